//! How CentrePoint reaches this receiver: the public URL a tunnel gives it.

pub mod discover;
pub mod tunnel;
