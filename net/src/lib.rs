//! Placeholder: filled by the TCP issue.
