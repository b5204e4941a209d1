//! Runs N requests through one of the stacks `benches/server_layer.rs`
//! measures, in process, so that a run under callgrind counts the
//! instructions of N requests (every thread's, obs's writer and exporter
//! threads included). `cargo xtask instructions` runs it at two values of N
//! per stack and prints the difference per request.
//!
//! ```text
//! cargo run --release -p obs --all-features --example request_cost -- STACK N
//! ```
//!
//! STACK is one of `bare`, `obs`, `obs-sampled`, `floor`, `floor-store`,
//! `by-hand`, `glued`, `glued-sampled` (see the bench's module docs), or
//! `obs-no-line`: `obs` with its access line turned off
//! (`ServerLayer::access_log(false)`), so that the difference to `obs` is
//! what the line costs.

#[path = "../benches/support/stacks.rs"]
mod stacks;

use std::process::ExitCode;

use tower::ServiceExt;

const STACKS: [&str; 9] = [
    "bare",
    "obs",
    "obs-sampled",
    "obs-no-line",
    "floor",
    "floor-store",
    "by-hand",
    "glued",
    "glued-sampled",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(stack), Some(Ok(n))) = (
        args.first().map(String::as_str),
        args.get(1).map(|n| n.parse::<u64>()),
    ) else {
        usage();
        return ExitCode::from(2);
    };
    if !STACKS.contains(&stack) {
        usage();
        return ExitCode::from(2);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let run = |dispatch: &tracing::Dispatch, router: &axum::Router| {
        tracing::dispatcher::with_default(dispatch, || {
            for _ in 0..n {
                let resp = rt
                    .block_on(
                        router
                            .clone()
                            .oneshot(std::hint::black_box(stacks::request())),
                    )
                    .expect("the router is infallible");
                assert_eq!(resp.status(), http::StatusCode::OK);
                drop(std::hint::black_box(resp));
            }
        });
    };
    match stack {
        "bare" => run(&tracing::Dispatch::none(), &stacks::served(stacks::app())),
        "obs" | "obs-sampled" | "obs-no-line" => {
            let line = stack != "obs-no-line";
            let (obs, dispatch, router) = stacks::obs_stack(&rt, stack == "obs-sampled", line);
            run(&dispatch, &router);
            drop((dispatch, router));
            let report = rt.block_on(obs.shutdown(std::time::Duration::from_secs(5)));
            // Every request's access line was written: a count of dropped
            // lines would measure the cheaper drop path instead.
            assert_eq!(report.log_lines_dropped, 0, "{report}");
            if line {
                assert!(report.log_lines_written >= n, "{report}");
            }
        }
        "floor" | "floor-store" => {
            let (dispatch, router) = stacks::floor(stack == "floor-store");
            run(&dispatch, &router);
        }
        "by-hand" => {
            let (stack, router) = stacks::by_hand();
            run(&tracing::Dispatch::none(), &router);
            drop(router);
            let (written, dropped) = stack.finish();
            // As for obs: every line written, none dropped.
            assert_eq!((written, dropped), (n, 0));
        }
        _ => {
            let glued = stacks::hand_glued(stack == "glued-sampled");
            run(&glued.dispatch, &glued.router);
            drop((glued.dispatch, glued.router, glued.registry));
            let _ = glued.provider.shutdown();
            drop(glued.log_guard);
        }
    }
    ExitCode::SUCCESS
}

#[allow(clippy::print_stderr, reason = "the usage line")]
fn usage() {
    eprintln!("usage: request_cost <{}> N", STACKS.join("|"));
}
