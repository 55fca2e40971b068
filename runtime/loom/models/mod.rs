//! The models. `tests/shipped.rs` runs each on the runtime's files as they are; each `tests/mutant_*.rs`
//! runs one on a mutant and expects it to fail. Each returns the number of executions loom explored.

pub(crate) mod atomic_waker;
pub(crate) mod completion;
pub(crate) mod executor;
