//! Graceful stop on SIGTERM/SIGINT, with the documented exit code.

use crate::harness::*;

#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut server = Server::start(
        "sigterm",
        "listen=udp:127.0.0.1:PORT\nloadmodule \"sl.so\"\nrequest_route { sl_send_reply(\"200\", \"OK\"); }\n",
    );
    let client = UdpClient::new();
    client.send(
        server.addr(),
        &options(client.port(), server.port, "before-stop"),
    );
    assert_eq!(status(&client.recv()), 200);
    let status = server.stop().expect("the server was running");
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log_text());
    assert!(server.log_text().contains("stopped"));
}
