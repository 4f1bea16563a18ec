//! `trainer` binary (work in progress: issue 4).
fn main() {
    eprintln!("trainer: not implemented yet (issue 4)");
    std::process::exit(2);
}
