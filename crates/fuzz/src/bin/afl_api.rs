//! AFL++ entry point of the `api` target (see [`serin_fuzz::api`]).
//!
//! `cargo afl build --release -p serin-fuzz --features afl`, then
//! `scripts/fuzz.sh api`.

fn main() {
    afl::fuzz!(|data: &[u8]| serin_fuzz::api::check(data));
}
