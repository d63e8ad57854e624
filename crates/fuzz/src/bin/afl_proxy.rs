//! AFL++ entry point of the `proxy` target (see [`serin_fuzz::proxy`]).
//!
//! `cargo afl build --release -p serin-fuzz --features afl`, then
//! `scripts/fuzz.sh proxy`.

fn main() {
    afl::fuzz!(|data: &[u8]| serin_fuzz::proxy::check(data));
}
