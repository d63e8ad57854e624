//! Sticky sessions as Flagger does them with Istio and the Gateway API.
//!
//! While a rollout is active (a canary with weight above 0), a user the weight
//! sends to the canary gets `Set-Cookie: <cookieName>=<token>; Max-Age=<maxAge>`
//! and every later request carrying that cookie goes to the canary. The token
//! is random per rollout, so a cookie from an earlier rollout means nothing to
//! the next one. With `primaryCookieName`, a user the weight sends to stable
//! gets that cookie with a short `Max-Age` (Flagger uses the analysis
//! interval) and stays on stable until it expires, then is drawn again at the
//! new weight. When the rollout ends (canary removed or weight 0, as on
//! rollback), users carrying the canary cookie go back to stable and the
//! cookie is deleted.

use crate::{Error, matching::cookie_value};
use http::HeaderValue;
use http::header::HeaderMap;
use std::time::Duration;

/// Random part of a session cookie: long enough not to be guessed by chance.
const TOKEN_LEN: usize = 16;

/// A rollout's session cookies, compiled once per routing table.
#[derive(Debug)]
pub(crate) struct Sticky {
    canary: Cookie,
    primary: Option<Cookie>,
    /// `Set-Cookie` deleting the canary cookie.
    expire_canary: HeaderValue,
}

#[derive(Debug)]
struct Cookie {
    name: String,
    token: String,
    set: HeaderValue,
}

/// What the session cookies say about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Affinity {
    /// No (current) session cookie.
    None,
    /// Carries this rollout's canary cookie.
    Canary,
    /// Carries this rollout's primary cookie.
    Stable,
    /// Carries a canary cookie from another rollout.
    StaleCanary,
}

// === impl Sticky ===

impl Sticky {
    /// Session cookies for one rollout; `canary_token`/`primary_token` carry
    /// over from the previous table of the same rollout.
    pub(crate) fn new(
        config: &crate::StickySessions,
        canary_token: Option<&str>,
        primary_token: Option<&str>,
    ) -> Result<Self, Error> {
        let canary = Cookie::new(&config.cookie_name, canary_token, config.max_age)?;
        let primary = match &config.primary_cookie_name {
            Some(name) => Some(Cookie::new(name, primary_token, config.primary_max_age)?),
            None => None,
        };
        let expire_canary = header(&format!("{}=; Max-Age=0; Path=/", config.cookie_name))?;
        Ok(Sticky {
            canary,
            primary,
            expire_canary,
        })
    }

    pub(crate) fn canary_token(&self) -> &str {
        &self.canary.token
    }

    pub(crate) fn primary_token(&self) -> Option<&str> {
        self.primary.as_ref().map(|c| c.token.as_str())
    }

    pub(crate) fn affinity(&self, headers: &HeaderMap) -> Affinity {
        if !headers.contains_key(http::header::COOKIE) {
            return Affinity::None;
        }
        match cookie_value(headers, &self.canary.name) {
            Some(v) if v == self.canary.token => return Affinity::Canary,
            Some(_) => return Affinity::StaleCanary,
            None => {}
        }
        match &self.primary {
            Some(p) if cookie_value(headers, &p.name) == Some(p.token.as_str()) => Affinity::Stable,
            _ => Affinity::None,
        }
    }

    /// Whether the request carries the canary cookie at all (any rollout's).
    pub(crate) fn has_canary_cookie(&self, headers: &HeaderMap) -> bool {
        headers.contains_key(http::header::COOKIE)
            && cookie_value(headers, &self.canary.name).is_some()
    }

    pub(crate) fn set_canary(&self) -> HeaderValue {
        self.canary.set.clone()
    }

    pub(crate) fn set_primary(&self) -> Option<HeaderValue> {
        self.primary.as_ref().map(|c| c.set.clone())
    }

    pub(crate) fn expire_canary(&self) -> HeaderValue {
        self.expire_canary.clone()
    }
}

// === impl Cookie ===

impl Cookie {
    fn new(name: &str, token: Option<&str>, max_age: Duration) -> Result<Self, Error> {
        if !valid_cookie_name(name) {
            return Err(Error::InvalidCookieName(name.to_owned()));
        }
        let token = match token {
            Some(t) => t.to_owned(),
            None => new_token(),
        };
        // `Path=/` keeps one assignment for the whole site: without it the
        // browser scopes the cookie to the directory of the first request.
        let set = header(&format!(
            "{name}={token}; Max-Age={}; Path=/",
            max_age.as_secs()
        ))?;
        Ok(Cookie {
            name: name.to_owned(),
            token,
            set,
        })
    }
}

fn header(value: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(value).map_err(|_| Error::InvalidCookieName(value.to_owned()))
}

/// RFC 6265 `token`: visible ASCII except separators.
fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

fn new_token() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(TOKEN_LEN)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StickySessions;

    fn config() -> StickySessions {
        StickySessions {
            cookie_name: "canary-cookie".into(),
            max_age: Duration::from_secs(300),
            primary_cookie_name: Some("primary-cookie".into()),
            primary_max_age: Duration::from_secs(60),
        }
    }

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            HeaderValue::from_str(cookie).unwrap_or_else(|e| panic!("{e}")),
        );
        h
    }

    #[test]
    fn cookies_name_the_rollout() {
        let s = Sticky::new(&config(), None, None).unwrap_or_else(|e| panic!("{e}"));
        let token = s.canary_token().to_owned();
        assert_eq!(token.len(), TOKEN_LEN);
        let set = s.set_canary();
        assert_eq!(
            set.to_str().ok(),
            Some(format!("canary-cookie={token}; Max-Age=300; Path=/").as_str())
        );
        let primary = s.primary_token().unwrap_or_default().to_owned();
        assert_eq!(
            s.affinity(&headers(&format!("x=1; canary-cookie={token}"))),
            Affinity::Canary
        );
        assert_eq!(
            s.affinity(&headers("canary-cookie=old")),
            Affinity::StaleCanary
        );
        assert_eq!(
            s.affinity(&headers(&format!("primary-cookie={primary}"))),
            Affinity::Stable
        );
        assert_eq!(s.affinity(&HeaderMap::new()), Affinity::None);
        // The same rollout keeps its tokens across tables.
        let again =
            Sticky::new(&config(), Some(&token), Some(&primary)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.canary_token(), token);
    }

    #[test]
    fn bad_names_are_refused() {
        let mut c = config();
        c.cookie_name = "a b".into();
        assert!(Sticky::new(&c, None, None).is_err());
    }
}
