//! E-processes.
