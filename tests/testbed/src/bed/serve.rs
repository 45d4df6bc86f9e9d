//! The bed's package archive over HTTP: a static file server on the bridge's address (the
//! hosts' only way out), run as `kubewright-testbed __serve DIR ADDR BED` by the bed, which kills
//! it on teardown. The same process answers the hosts' API storage requests on a unix socket in
//! the bed's cluster directory (`sim::cluster::serve_api`).
//!
//! Enough HTTP/1.1 for apt and curl: GET and HEAD, persistent connections (apt pipelines its
//! requests on one), percent-encoded paths (apt may encode the `:` of `core:/stable:`), 404
//! for anything missing or outside DIR (`..` is refused, not resolved). One thread per connection: a bed has at most a few
//! hundred hosts, each with one or two connections at a time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};

use anyhow::Context;

pub fn run_serve(dir: &Path, addr: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let dir = dir.to_path_buf();
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let dir = dir.clone();
        std::thread::spawn(move || {
            // A client that goes away mid-request is its own business.
            let _ = serve_connection(&dir, conn);
        });
    }
    Ok(())
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The file a request path names, if it is a file inside `dir`. The Kubernetes repositories
/// are served under any base path too (`/any/prefix/core:/stable:/v1.31/deb/...`), as a
/// mirror may put them: tests point `cluster.packages.mirror` at odd URLs.
fn resolve(dir: &Path, target: &str) -> Option<PathBuf> {
    let path = percent_decode(target.split(['?', '#']).next()?)?;
    file_in(dir, &path).or_else(|| path.find("/core:/stable:/").and_then(|i| file_in(dir, &path[i..])))
}

fn file_in(dir: &Path, path: &str) -> Option<PathBuf> {
    let rel = Path::new(path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let full = dir.join(rel);
    full.is_file().then_some(full)
}

fn serve_connection(dir: &Path, conn: TcpStream) -> anyhow::Result<()> {
    conn.set_read_timeout(Some(std::time::Duration::from_secs(120)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request)? == 0 {
            return Ok(());
        }
        let mut close = request.trim_end().ends_with("HTTP/1.0");
        let mut body_len = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase());
                if name == "connection" && value == "close" {
                    close = true;
                }
                if name == "content-length" {
                    body_len = value.parse().unwrap_or(0);
                }
            }
        }
        if body_len > 0 {
            std::io::copy(&mut (&mut reader).take(body_len as u64), &mut std::io::sink())?;
        }
        let mut words = request.split_whitespace();
        let method = words.next().unwrap_or("");
        let target = words.next().unwrap_or("/");
        let connection = if close { "close" } else { "keep-alive" };
        match (method, resolve(dir, target)) {
            ("GET" | "HEAD", Some(file)) => {
                let body = std::fs::read(&file)?;
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: {connection}\r\n\r\n",
                    body.len()
                )?;
                if method == "GET" {
                    out.write_all(&body)?;
                }
            }
            ("GET" | "HEAD", None) => {
                let body = b"404 Not Found\n";
                write!(
                    out,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: {connection}\r\n\r\n",
                    body.len()
                )?;
                if method == "GET" {
                    out.write_all(body)?;
                }
            }
            _ => {
                write!(out, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
                return Ok(());
            }
        }
        out.flush()?;
        if close {
            return Ok(());
        }
    }
}
