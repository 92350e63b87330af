//! Test support shared by the workspace's tests and benchmarks, kept out of the libraries'
//! public API: where the licensed data lives, a scripted OpenAI-compatible server, numeric
//! comparisons that never swallow NaN, and composite reference paths the fused ones are
//! checked against.

pub mod compare;
pub mod fixture;
pub mod process;
pub mod reference;
pub mod shared;
pub mod test_server;

pub use compare::{assert_close, assert_params_close, hf_host, max_abs_diff, nan_max};
pub use fixture::bool_grid;
pub use shared::shared_data;
