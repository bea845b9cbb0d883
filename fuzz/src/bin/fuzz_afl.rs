//! The AFL++ driver: `fuzz-afl TARGET`, fed by `afl-fuzz` (see scripts/fuzz.sh).

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(target) = interpose_fuzz::target(&name) else {
        let names: Vec<&str> = interpose_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!("usage: fuzz-afl TARGET (one of: {})", names.join(", "));
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| (target.run)(data));
}
