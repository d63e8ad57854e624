//! Request and response bodies as enums rather than boxed trait objects: the
//! common case (a streamed `Incoming`) costs no allocation.

use crate::forward::Checkin;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streamed request body grew past `max_request_body_bytes`.
#[derive(Debug, thiserror::Error)]
#[error("request body larger than {0} bytes")]
pub(crate) struct BodyTooLarge(pub u64);

/// The client's own body failed (it hung up mid-upload, or sent a malformed
/// chunk). Wrapped so the forwarder can tell it from an upstream failure:
/// it is answered 400 and never recorded as the version's error.
#[derive(Debug, thiserror::Error)]
#[error("client request body: {0}")]
pub(crate) struct ClientBodyError(#[source] pub hyper::Error);

pin_project! {
    /// What is sent upstream.
    #[project = RequestBodyProj]
    pub(crate) enum RequestBody {
        /// The client's body, streamed; `limit` counts down what may still come.
        Stream {
            #[pin]
            inner: Incoming,
            limit: Option<Limit>,
        },
        /// A buffered body (mirrored requests and their stable original).
        Full { data: Option<Bytes> },
    }
}

/// A streaming size limit; `tripped` tells the forwarder that the upstream
/// error it sees was this limit (answered 413, not 502).
#[derive(Debug)]
pub(crate) struct Limit {
    pub max: u64,
    pub remaining: u64,
    pub tripped: Arc<AtomicBool>,
}

// === impl RequestBody ===

impl RequestBody {
    pub(crate) fn full(data: Bytes) -> Self {
        RequestBody::Full {
            data: (!data.is_empty()).then_some(data),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project() {
            RequestBodyProj::Stream { inner, limit } => {
                let frame = match inner.poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => frame,
                    Poll::Ready(Some(Err(e))) => {
                        return Poll::Ready(Some(Err(ClientBodyError(e).into())));
                    }
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                };
                if let (Some(limit), Some(data)) = (limit.as_mut(), frame.data_ref()) {
                    let len = data.len() as u64;
                    if len > limit.remaining {
                        limit.tripped.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(BodyTooLarge(limit.max).into())));
                    }
                    limit.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            RequestBodyProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Stream { inner, .. } => inner.is_end_stream(),
            RequestBody::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Stream { inner, .. } => inner.size_hint(),
            RequestBody::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

pin_project! {
    /// What is sent back to the client.
    #[project = ResponseBodyProj]
    pub(crate) enum ResponseBody {
        /// The upstream's body, streamed; its connection goes back to the
        /// pool once the body has been read to the end.
        Upstream {
            #[pin]
            inner: Incoming,
            checkin: Option<Checkin>,
        },
        /// A response the proxy made itself (errors).
        Full { data: Option<Bytes> },
    }
}

// === impl ResponseBody ===

impl ResponseBody {
    /// The upstream's body; gives the connection back at once when there is
    /// no body to read.
    pub(crate) fn upstream(inner: Incoming, checkin: Checkin) -> Self {
        let checkin = if inner.is_end_stream() {
            checkin.release();
            None
        } else {
            Some(checkin)
        };
        ResponseBody::Upstream { inner, checkin }
    }

    pub(crate) fn text(s: &'static str) -> Self {
        ResponseBody::Full {
            data: Some(Bytes::from_static(s.as_bytes())),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.project() {
            ResponseBodyProj::Upstream { mut inner, checkin } => {
                let polled = inner.as_mut().poll_frame(cx);
                match &polled {
                    Poll::Pending => {}
                    // hyper stops polling once `is_end_stream` says so.
                    Poll::Ready(Some(Ok(_))) if !inner.is_end_stream() => {}
                    Poll::Ready(Some(Ok(_)) | None) => {
                        if let Some(checkin) = checkin.take() {
                            checkin.release();
                        }
                    }
                    // The connection is in an unknown state: close it.
                    Poll::Ready(Some(Err(_))) => drop(checkin.take()),
                }
                polled
            }
            ResponseBodyProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Upstream { inner, .. } => inner.is_end_stream(),
            ResponseBody::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Upstream { inner, .. } => inner.size_hint(),
            ResponseBody::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
