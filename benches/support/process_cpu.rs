//! CPU time used by this process, and by the processes of a local server, for rows per CPU
//! second and for telling which side of a client–server pipeline is busy.
#![allow(dead_code)]

/// User and system CPU seconds in the text of a `/proc/<pid>/stat` file.
fn stat_seconds(stat: &str) -> f64 {
    // Fields after the command name (which is in parentheses): utime and stime are the
    // 12th and 13th, in clock ticks of 1/100 s on Linux.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: f64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// CPU seconds this process has used (all its threads, those that ended too), from
/// /proc/self/stat; 0 where there is no /proc.
pub fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat").map_or(0.0, |s| stat_seconds(&s))
}

/// CPU seconds used so far by the running processes named `command` (as `/proc/<pid>/comm`
/// gives it, e.g. `postgres`): a local server's backends and helpers. Processes that ended
/// between two readings take their seconds with them, so read it around work whose
/// connections stay open.
pub fn cpu_seconds_of(command: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == command)
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .map(|s| stat_seconds(&s))
        .sum()
}
