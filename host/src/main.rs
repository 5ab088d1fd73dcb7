// Records are allocated by source tasks and freed by sink tasks on other threads; glibc's
// malloc serialises those cross-thread frees on arena locks (measured: a third of the
// file → Parquet pipeline's time). mimalloc frees them without contention.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    headwater::cli::main()
}
