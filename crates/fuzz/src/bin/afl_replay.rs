//! AFL++ entry point of the `replay` target (see [`serin_fuzz::replay`]).
//!
//! `cargo afl build --release -p serin-fuzz --features afl`, then
//! `scripts/fuzz.sh replay`.

fn main() {
    afl::fuzz!(|data: &[u8]| serin_fuzz::replay::check(data));
}
