//! From a `cmd` string to an argument vector, without a shell.
//!
//! flagger-loadtester hands `metadata.cmd` to `sh -c`, so anyone who can
//! edit a canary manifest runs any command on the load tester. serin splits
//! the string into words the way a shell would (quotes and backslashes), but
//! runs no shell: anything that only a shell would act on (`;`, `|`, `&`,
//! `$(…)`, `${…}`, backticks, redirections, subshells) is refused rather than
//! passed on literally, so a manifest written for a shell fails loudly
//! instead of doing something else. The program must be a bare name on the
//! allow-list, and no argument may name a file by an absolute or parent path
//! (`hey -D /etc/shadow` would send the file to the target).

use std::collections::BTreeSet;

/// Programs allowed when the operator names none: load generators that only
/// send requests.
pub const DEFAULT_PROGRAMS: &[&str] = &["hey", "wrk", "ghz"];

/// Shells and interpreters: never runnable through `cmd`, whatever the
/// allow-list says, since they would run a script given as an argument.
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "fish", "busybox", "env", "python", "python3", "perl",
    "ruby", "node",
];

/// The most words a command may have.
const MAX_WORDS: usize = 256;
/// The longest command accepted.
pub const MAX_COMMAND_BYTES: usize = 8 * 1024;

/// Why a command is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    /// Nothing to run.
    #[error("metadata.cmd: empty command")]
    Empty,
    /// Longer than [`MAX_COMMAND_BYTES`] or more than [`MAX_WORDS`] words.
    #[error(
        "metadata.cmd: command too long (at most {MAX_COMMAND_BYTES} bytes and {MAX_WORDS} words)"
    )]
    TooLong,
    /// A character only a shell acts on.
    #[error("metadata.cmd: {what} ({found:?}) needs a shell, and serin runs commands without one")]
    ShellSyntax {
        /// What the character means to a shell.
        what: &'static str,
        /// The offending text.
        found: String,
    },
    /// A quote is never closed.
    #[error("metadata.cmd: unterminated {0} quote")]
    Unterminated(&'static str),
    /// The program is given as a path.
    #[error("metadata.cmd: program {0:?} must be a bare name from the allow-list, not a path")]
    ProgramPath(String),
    /// The program is a shell or interpreter.
    #[error(
        "metadata.cmd: {0:?} is a shell or interpreter; shell commands need `type: bash` and a load tester started with --allow-shell"
    )]
    Shell(String),
    /// The program is not on the allow-list.
    #[error("metadata.cmd: program {program:?} is not allowed (allowed: {allowed})")]
    NotAllowed {
        /// The program asked for.
        program: String,
        /// The allow-list, comma-separated.
        allowed: String,
    },
    /// An argument names a local file by an absolute or parent path.
    #[error("metadata.cmd: argument {0:?} names a local file by path; not allowed")]
    FilePath(String),
}

/// A command ready to run: a program and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Argv {
    /// A bare program name, looked up on `PATH`.
    pub program: String,
    /// Its arguments, as written.
    pub args: Vec<String>,
}

/// The programs `cmd` may run.
#[derive(Clone, Debug)]
pub struct Allowlist {
    programs: BTreeSet<String>,
}

// === impl Allowlist ===

impl Default for Allowlist {
    fn default() -> Self {
        Allowlist::new(DEFAULT_PROGRAMS.iter().copied())
    }
}

impl Allowlist {
    /// Exactly these programs.
    pub fn new<'a>(programs: impl IntoIterator<Item = &'a str>) -> Self {
        Allowlist {
            programs: programs.into_iter().map(str::to_owned).collect(),
        }
    }

    /// Adds a program.
    pub fn allow(&mut self, program: &str) {
        self.programs.insert(program.to_owned());
    }

    /// Splits `command` into words and checks every rule of this module.
    pub fn parse(&self, command: &str) -> Result<Argv, CommandError> {
        let words = split(command)?;
        let mut words = words.into_iter();
        let program = words.next().ok_or(CommandError::Empty)?;
        if program.contains('/') {
            return Err(CommandError::ProgramPath(program));
        }
        if SHELLS.contains(&program.as_str()) {
            return Err(CommandError::Shell(program));
        }
        if !self.programs.contains(&program) {
            return Err(CommandError::NotAllowed {
                program,
                allowed: self
                    .programs
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let args: Vec<String> = words.collect();
        for arg in &args {
            // `-o/etc/x` and `--file=/etc/x` name files too.
            let value = arg.split_once('=').map_or(arg.as_str(), |(_, v)| v);
            let value = value.strip_prefix("-").map_or(value, |rest| {
                rest.trim_start_matches(|c: char| c.is_ascii_alphabetic() || c == '-')
            });
            if arg.starts_with('/')
                || value.starts_with('/')
                || arg.starts_with('~')
                || arg.contains("../")
                || arg == ".."
            {
                return Err(CommandError::FilePath(arg.clone()));
            }
        }
        Ok(Argv { program, args })
    }
}

/// Shell-like word splitting that refuses what only a shell would act on.
/// Single quotes keep everything literal; double quotes keep everything but
/// `$`, backticks and backslashes, which are refused there as a shell would
/// expand them; outside quotes every operator character is refused.
pub fn split(command: &str) -> Result<Vec<String>, CommandError> {
    if command.len() > MAX_COMMAND_BYTES {
        return Err(CommandError::TooLong);
    }
    let refuse = |what: &'static str, found: &str| CommandError::ShellSyntax {
        what,
        found: found.to_owned(),
    };
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\n' | '\r' => return Err(refuse("a line break separates commands", "\\n")),
            ';' => return Err(refuse("`;` separates commands", ";")),
            '|' => return Err(refuse("`|` is a pipe", "|")),
            '&' => return Err(refuse("`&` runs in the background or chains commands", "&")),
            '<' | '>' => return Err(refuse("a redirection", &c.to_string())),
            '(' | ')' => return Err(refuse("a subshell", &c.to_string())),
            '`' => return Err(refuse("backticks substitute a command", "`")),
            '$' => return Err(refuse("`$` expands (`$(…)`, `${…}`, `$VAR`)", "$")),
            '*' | '?' | '[' if !in_word || !word.starts_with("http") => {
                return Err(refuse("a glob", &c.to_string()));
            }
            '#' if !in_word => return Err(refuse("`#` starts a comment", "#")),
            '{' | '}' if !in_word => return Err(refuse("braces group commands", &c.to_string())),
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(inner) => word.push(inner),
                        None => return Err(CommandError::Unterminated("single")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('$') => return Err(refuse("`$` expands inside double quotes", "$")),
                        Some('`') => {
                            return Err(refuse("backticks substitute a command", "`"));
                        }
                        Some('\\') => {
                            return Err(refuse(
                                "a backslash inside double quotes (use single quotes)",
                                "\\",
                            ));
                        }
                        Some(inner) => word.push(inner),
                        None => return Err(CommandError::Unterminated("double")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') | None => return Err(refuse("a trailing backslash", "\\")),
                Some(escaped) => {
                    in_word = true;
                    word.push(escaped);
                }
            },
            other => {
                in_word = true;
                word.push(other);
            }
        }
        if words.len() > MAX_WORDS {
            return Err(CommandError::TooLong);
        }
    }
    if in_word {
        words.push(word);
    }
    if words.len() > MAX_WORDS {
        return Err(CommandError::TooLong);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(command: &str) -> Result<Argv, CommandError> {
        Allowlist::default().parse(command)
    }

    #[test]
    fn flagger_load_commands_split_into_words() {
        let argv = parse("hey -z 1m -q 10 -c 2 -H 'Cookie: canary=always' http://app.test:80/?a=1")
            .unwrap();
        assert_eq!(argv.program, "hey");
        assert_eq!(
            argv.args,
            [
                "-z",
                "1m",
                "-q",
                "10",
                "-c",
                "2",
                "-H",
                "Cookie: canary=always",
                "http://app.test:80/?a=1"
            ]
        );
        let argv = parse(r#"hey -H "x-canary: insider" 'http://a/?x=1&y=2'"#).unwrap();
        assert_eq!(argv.args, ["-H", "x-canary: insider", "http://a/?x=1&y=2"]);
    }

    #[test]
    fn shell_syntax_is_refused() {
        for smuggled in [
            "hey http://a/; rm -rf ~",
            "hey http://a/ && curl evil",
            "hey http://a/ | sh",
            "hey $(curl evil) http://a/",
            "hey \"$(id)\" http://a/",
            "hey `id` http://a/",
            "hey http://a/ > /tmp/x",
            "hey http://a/ < /etc/passwd",
            "hey ${HOME} http://a/",
            "hey http://a/\nid",
            "hey http://a/ &",
            "(hey http://a/)",
            "hey 'unterminated",
        ] {
            assert!(parse(smuggled).is_err(), "{smuggled:?} was accepted");
        }
    }

    #[test]
    fn programs_must_be_bare_allowed_names() {
        assert_eq!(
            parse("/usr/bin/hey http://a/"),
            Err(CommandError::ProgramPath("/usr/bin/hey".into()))
        );
        assert_eq!(
            parse("./hey http://a/"),
            Err(CommandError::ProgramPath("./hey".into()))
        );
        assert!(matches!(
            parse("curl http://a/"),
            Err(CommandError::NotAllowed { .. })
        ));
        assert_eq!(
            parse("bash -c 'hey http://a/'"),
            Err(CommandError::Shell("bash".into()))
        );
        let mut list = Allowlist::default();
        list.allow("sh");
        assert_eq!(
            list.parse("sh -c id"),
            Err(CommandError::Shell("sh".into()))
        );
        assert_eq!(parse(""), Err(CommandError::Empty));
        assert_eq!(parse("   "), Err(CommandError::Empty));
    }

    #[test]
    fn arguments_may_not_name_local_files() {
        for reading in [
            "hey -D /etc/shadow -m POST http://a/",
            "hey -D/etc/shadow http://a/",
            "hey --body=/etc/shadow http://a/",
            "hey -D ../secret http://a/",
            "hey -D ~/.ssh/id_rsa http://a/",
        ] {
            assert!(
                matches!(parse(reading), Err(CommandError::FilePath(_))),
                "{reading:?}"
            );
        }
    }
}
