//! The root authority.
//!
//! Some powers must not be available to any library that happens to hold an actor reference:
//! applying backpressure on the runtime, binding sockets. In the object-capability style of
//! Pony, those powers need a token derived from [`AmbientAuth`], which only the runtime mints
//! and hands to the program's entry point ([`Builder::build_with_auth`](crate::Builder::build_with_auth)).
//! A library gets authority only if the program passes it one.

/// The root authority. It cannot be built outside rein; the program's entry point receives it
/// when it builds its runtime, and passes it (or narrower tokens derived from it) to whatever
/// should hold those powers.
///
/// ```
/// let (rt, auth) = rein::Runtime::builder().threads(1).build_with_auth().unwrap();
/// let same: rein::AmbientAuth = auth.clone();
/// # drop((rt, same));
/// ```
#[derive(Clone, Debug)]
pub struct AmbientAuth {
    _private: (),
}

impl AmbientAuth {
    pub(crate) fn mint() -> Self {
        AmbientAuth { _private: () }
    }
}
