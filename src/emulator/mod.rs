//! The CentrePoint emulator: deliveries built from templates or replayed from HTTP
//! fixtures, signed and posted as CentrePoint would.

pub mod fixture;
pub mod send;
