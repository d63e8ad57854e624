//! AFL++ entry point of the `spec` target (see [`serin_fuzz::spec`]).
//!
//! `cargo afl build --release -p serin-fuzz --features afl`, then
//! `scripts/fuzz.sh spec`.

fn main() {
    afl::fuzz!(|data: &[u8]| serin_fuzz::spec::check(data));
}
