//! Placeholder: filled by the backpressure issue.
