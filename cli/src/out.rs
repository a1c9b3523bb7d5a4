//! Standard output that may close early (`shoal ... | head`). `outln!` panics when the
//! reader has gone away; the CLI prints through [`outln!`] and [`out!`] instead, which end
//! the process quietly with status 0 on a closed pipe (as ripgrep does). Output written
//! through a `Write` and `?` reaches `main` as an error, which [`is_closed_pipe`] recognises
//! so that it too ends quietly.

use std::fmt;
use std::io::{self, Write};

/// `outln!` that exits quietly (status 0) once standard output is a closed pipe.
macro_rules! outln {
    () => {
        $crate::out::print(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that exits quietly (status 0) once standard output is a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::print(format_args!($($arg)*))
    };
}

/// Writes to standard output. A closed pipe ends the process with status 0; any other
/// error panics, as `print!` does.
pub fn print(args: fmt::Arguments<'_>) {
    let written = io::stdout().lock().write_fmt(args);
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => panic!("failed printing to stdout: {error}"),
    }
}

/// Whether `error` comes from writing to a reader that went away.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|cause| cause.kind() == io::ErrorKind::BrokenPipe)
}
