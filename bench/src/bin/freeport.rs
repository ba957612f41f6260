//! `freeport [N]`: prints N (default 1) distinct free TCP ports on 127.0.0.1, one a line. The ports
//! are held together while chosen, then released for the caller to bind.

use std::net::TcpListener;

fn main() -> std::io::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let listeners = (0..n)
        .map(|_| TcpListener::bind((bench::HOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    for listener in &listeners {
        println!("{}", listener.local_addr()?.port());
    }
    Ok(())
}
