//! Helpers shared by the command-line tests.

pub use serin_testkit::{free_port, write};
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// The `serin` binary under test.
pub fn serin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_serin"));
    command
        .env_remove("SERIN_LOG")
        .env_remove("SERIN_SERVER")
        .env_remove("SERIN_TOKEN");
    command
}

/// The repository's test data.
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// Runs and returns the output, failing the test with stderr when it cannot start.
pub fn output(command: &mut Command) -> Output {
    command.output().expect("serin runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
