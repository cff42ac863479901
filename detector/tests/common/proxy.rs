//! A TCP proxy that a test can cut and restore, to make a server unreachable without
//! stopping it (the shared servers must keep running for other tests).
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    up: watch::Sender<bool>,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards every connection to `upstream` while up.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, _) = watch::channel(true);
        let state = up.subscribe();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if !*state.borrow() {
                    drop(client); // cut: the connection is closed at once
                    continue;
                }
                tokio::spawn(forward(client, upstream, state.clone()));
            }
        });
        Self { addr, up }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every open connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, mut state: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => {}
        _ = state.wait_for(|up| !*up) => {}
    }
}

/// `host:port` of an `http://host:port` URL, resolved.
pub fn socket_addr(url: &str) -> SocketAddr {
    use std::net::ToSocketAddrs;
    let host_port = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    host_port.to_socket_addrs().unwrap().next().unwrap()
}
