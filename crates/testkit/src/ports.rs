//! Free loopback ports, for servers a test starts at an address it must
//! know in advance (a canary file's `listen`, a child process's flags).

/// A port free right now on loopback.
///
/// The port is released before it is returned, so another process could
/// take it first; on a test machine that race is rare enough, and it is the
/// only way to hand a fixed address to a program that binds it itself.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}
