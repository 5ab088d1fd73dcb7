//! The process-wide wasmtime engine: pooling allocator, epoch interruption driven by a 1 ms
//! ticker thread, and no component-model concurrency (3x cheaper calls; plugins are sync).

use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// The largest `max.memory.bytes` a step may ask for: the size of a pooled memory slot.
pub const MEMORY_CEILING: u64 = 1 << 30;

/// How often the epoch advances: the resolution of `timeout.ms`.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Why the engine could not start. Kept for the life of the process (every later call gets
/// the same answer), so it holds the message rather than wasmtime's error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot start the WebAssembly engine: {0}")]
pub struct EngineError(String);

static ENGINE: OnceLock<Result<Engine, EngineError>> = OnceLock::new();

/// The shared engine, built on first use.
pub fn engine() -> Result<&'static Engine, EngineError> {
    ENGINE
        .get_or_init(|| {
            let engine = build(true)
                .or_else(|pooled| {
                    // A machine with a small address-space limit cannot reserve the pool;
                    // instances are then allocated on demand (slower to create, same limits).
                    tracing::warn!(error = %pooled, "WASM pooling allocator unavailable; using on-demand allocation.");
                    build(false)
                })
                .map_err(|e| EngineError(format!("{e:#}")))?;
            let ticker = engine.clone();
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(EPOCH_TICK);
                        ticker.increment_epoch();
                    }
                })
                .map_err(|e| EngineError(format!("the epoch ticker thread: {e}")))?;
            Ok(engine)
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn build(pooling: bool) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.concurrency_support(false);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(256)
            .total_core_instances(2048)
            .total_memories(256)
            .total_tables(2048)
            .max_core_instances_per_component(32)
            .max_memories_per_component(4)
            .max_tables_per_component(32)
            .max_memory_size(MEMORY_CEILING as usize);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config)
}
