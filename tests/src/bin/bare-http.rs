//! bare-http: the HTTP ceiling for the ingress benchmark.
//!
//! A warp server on the same runtime (tokio, multi-threaded) that reads each
//! POST body to its end and answers `200 {"status":"accepted"}`, on any path.
//! No signature check, no parsing, no Kafka: whatever the ingress costs on top
//! of this is the ingress's own work.
//!
//! `bare-http --listen 127.0.0.1:18081` runs until SIGTERM or ctrl-c.

use std::net::SocketAddr;

use clap::Parser;
use warp::Filter;

#[derive(Debug, Parser)]
#[command(about = "A warp server that answers 200 to every POST (benchmark ceiling)")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:18081")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let accept = warp::post()
        .and(warp::body::bytes())
        .map(|_body: bytes::Bytes| {
            warp::reply::with_header(
                r#"{"status":"accepted"}"#,
                "content-type",
                "application/json",
            )
        });
    let healthz = warp::get().and(warp::path!("healthz")).map(|| "ok");
    println!("bare-http listening on {}", args.listen);
    warp::serve(accept.or(healthz))
        .bind(args.listen)
        .await
        .graceful(async {
            shared::shutdown::signal().await;
        })
        .run()
        .await;
}
