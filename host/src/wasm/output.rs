//! Guest stdout and stderr: forwarded line by line to `tracing` with the connector and step
//! named, and the current call's stderr kept so a panic's message can explain the trap.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use super::host::Scope;

/// The longest line (and the most stderr per call) kept; the rest is cut.
const MAX_KEPT: usize = 4096;

#[derive(Debug, Default)]
struct Buffers {
    partial: Vec<u8>,
    captured: String,
}

/// One guest output stream (stdout or stderr).
#[derive(Clone)]
pub struct GuestOutput {
    scope: Arc<Scope>,
    stream: &'static str,
    buffers: Arc<Mutex<Buffers>>,
}

impl GuestOutput {
    pub fn new(scope: Arc<Scope>, stream: &'static str) -> Self {
        Self {
            scope,
            stream,
            buffers: Arc::default(),
        }
    }

    fn buffers(&self) -> MutexGuard<'_, Buffers> {
        // A panic while holding this lock only loses log text.
        self.buffers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the guest wrote since the last call, complete lines and the unfinished one.
    pub fn take_captured(&self) -> String {
        let mut b = self.buffers();
        let mut text = std::mem::take(&mut b.captured);
        if !b.partial.is_empty() {
            text.push_str(&String::from_utf8_lossy(&b.partial));
        }
        text
    }

    fn append(&self, bytes: &[u8]) {
        let mut b = self.buffers();
        let mut rest = bytes;
        while let Some(newline) = rest.iter().position(|&c| c == b'\n') {
            let (line, after) = rest.split_at(newline);
            let mut full = std::mem::take(&mut b.partial);
            full.extend_from_slice(line);
            let text = String::from_utf8_lossy(&full).into_owned();
            self.emit(&text);
            if b.captured.len() < MAX_KEPT {
                b.captured.push_str(&text);
                b.captured.push('\n');
            }
            rest = &after[1..];
        }
        if b.partial.len() < MAX_KEPT {
            let room = MAX_KEPT - b.partial.len();
            b.partial.extend_from_slice(&rest[..rest.len().min(room)]);
        }
    }

    fn emit(&self, line: &str) {
        let (connector, step) = (&*self.scope.connector, &*self.scope.step);
        match self.stream {
            "stderr" => {
                tracing::warn!(connector = %connector, step = %step, stream = "stderr", "{line}")
            }
            _ => tracing::info!(connector = %connector, step = %step, stream = "stdout", "{line}"),
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.append(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
