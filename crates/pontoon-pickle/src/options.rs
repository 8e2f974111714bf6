//! [`LoadOptions`]: what a decoder lets a pickle make, and which globals it lets through.

use pontoon_wire::Limits;

/// Which globals outside the allow-list a decoder keeps as opaque values
/// ([`Node::Global`](crate::Node::Global), [`Node::Object`](crate::Node::Object)) instead of
/// refusing them. Opaque values are never called: they hold the global's name and its arguments,
/// to be inspected or written back.
///
/// ```
/// use pontoon_pickle::Opaque;
/// let only_mine = Opaque::Listed(vec!["mymod.Point".into()]);
/// assert!(only_mine.allows("mymod", "Point"));
/// assert!(!only_mine.allows("os", "system"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Opaque {
    /// Refuse every global outside the allow-list (the default).
    #[default]
    Refuse,
    /// Keep the globals named here (`module.name`) as opaque values; refuse the rest.
    Listed(Vec<String>),
    /// Keep every global outside the allow-list as an opaque value.
    All,
}

impl Opaque {
    /// Whether `module.name` may be kept as an opaque value.
    ///
    /// ```
    /// assert!(pontoon_pickle::Opaque::All.allows("os", "system"));
    /// assert!(!pontoon_pickle::Opaque::Refuse.allows("mymod", "Point"));
    /// ```
    pub fn allows(&self, module: &str, name: &str) -> bool {
        match self {
            Opaque::Refuse => false,
            Opaque::All => true,
            Opaque::Listed(names) => names.iter().any(|full| {
                full.len() == module.len() + 1 + name.len()
                    && full.starts_with(module)
                    && full.as_bytes()[module.len()] == b'.'
                    && full.ends_with(name)
            }),
        }
    }
}

/// What a decoder lets a pickle make. Every field has a default that is safe for input from a
/// peer.
///
/// ```
/// use pontoon_pickle::{LoadOptions, Opaque};
/// let mut options = LoadOptions::default();
/// options.opaque = Opaque::All;
/// assert_eq!(options.max_expansion_ratio, 8);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LoadOptions {
    /// The most marks open at once: how deep protocol 0 and 1 containers, and the argument
    /// lists of every protocol, may nest. Default 1000 (Python cannot write deeper pickles with
    /// its default recursion limit).
    pub max_depth: usize,
    /// The most nodes, container items and copied bytes a pickle may make per byte of its
    /// input (at least 64 Ki in all). Out-of-band buffers are views and do not count.
    /// Default 8.
    pub max_expansion_ratio: u64,
    /// The longest integer, in bytes of `LONG1`/`LONG4` (decimal text of `INT` and `LONG` is
    /// held to the same, and refused unread beyond 3 digits a byte): converting integers to and
    /// from decimal is quadratic in their length. Default
    /// 8192 (about 19,700 digits; Python itself refuses more than 4,300 digits by default).
    pub max_int_bytes: usize,
    /// Globals outside the allow-list kept as opaque values; refused by default.
    pub opaque: Opaque,
    /// The limits numpy arrays are built under
    /// ([`Array::from_parts`](pontoon_array::Array::from_parts)).
    pub array_limits: Limits,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions {
            max_depth: 1000,
            max_expansion_ratio: 8,
            max_int_bytes: 8192,
            opaque: Opaque::Refuse,
            array_limits: Limits::DEFAULT,
        }
    }
}
