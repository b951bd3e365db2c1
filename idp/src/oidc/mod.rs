//! The OpenID Connect provider of a practice (issuer `<origin>/id`).

pub mod backchannel;
pub mod grants;
