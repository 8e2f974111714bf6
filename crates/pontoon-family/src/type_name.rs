//! The name a value's type has on the wire: [`TypeName`] declares a stable one with the type;
//! an unregistered serde type is matched by its Rust name with the paths taken out.

/// A stable name for a type, declared with the type: the name its messages carry, whatever
/// module the type lives in and however the program was built. Register it with
/// [`Registry::register_named`](crate::Registry::register_named) (serde types) or
/// [`Registry::register_custom`](crate::Registry::register_custom) (types with a
/// [`Custom`](crate::Custom) serializer).
///
/// Anything written to disk needs one (a `pontoon_persist::Durable` refuses a type without), and
/// so do dynamic values; two programs that share a type only by name need one too.
///
/// ```
/// use pontoon_family::{Registry, TypeName};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, PartialEq, Debug)]
/// struct Sample { value: f64 }
///
/// impl TypeName for Sample {
///     const NAME: &'static str = "app.Sample";
/// }
///
/// let mut registry = Registry::new();
/// registry.register_named::<Sample>()?;
/// let message = registry.serialize(&Sample { value: 0.5 })?;
/// assert_eq!(message.header.to_value()?["type"].as_str(), Some("app.Sample"));
/// assert_eq!(registry.stable_name::<Sample>(), Some("app.Sample"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait TypeName {
    /// The name: unique among the types a program sends, and kept when the type moves or the
    /// program is rebuilt. A dotted `crate.Type` is the convention.
    const NAME: &'static str;
}

/// Whether a message naming `found` may hold the unregistered type whose Rust name
/// (`std::any::type_name`) is `expected`: the same name, or the same once every path is taken
/// out (`app::model::Sample` and `model::Sample` are both `Sample`; `alloc::vec::Vec<u8>` is
/// `Vec<u8>`). So a message survives a type's move to another module and compilers that print
/// paths differently, but not a rename: the type's name is still checked, not its path.
pub(crate) fn unregistered_matches(expected: &str, found: &[u8]) -> bool {
    expected.as_bytes() == found
        || WithoutPaths::new(expected.as_bytes()).eq(WithoutPaths::new(found))
}

/// The bytes of a Rust type name with every `path::` prefix left out.
struct WithoutPaths<'a> {
    rest: &'a [u8],
    /// Whether the next byte starts a path or a name (after `<`, `,`, a space and the like).
    at_start: bool,
}

impl<'a> WithoutPaths<'a> {
    fn new(name: &'a [u8]) -> WithoutPaths<'a> {
        WithoutPaths {
            rest: name,
            at_start: true,
        }
    }
}

fn is_ident(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || !byte.is_ascii()
}

impl Iterator for WithoutPaths<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        if self.at_start {
            loop {
                let ident = self.rest.iter().take_while(|&&b| is_ident(b)).count();
                match self.rest.get(ident..) {
                    Some(after) if ident > 0 && after.starts_with(b"::") => {
                        self.rest = after.get(2..).unwrap_or_default();
                    }
                    _ => break,
                }
            }
            self.at_start = false;
        }
        let (&byte, rest) = self.rest.split_first()?;
        self.rest = rest;
        if !is_ident(byte) {
            self.at_start = true;
        }
        Some(byte)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short(name: &str) -> String {
        String::from_utf8(WithoutPaths::new(name.as_bytes()).collect()).unwrap()
    }

    #[test]
    fn paths_are_taken_out_everywhere_in_the_name() {
        assert_eq!(short("app::model::Sample"), "Sample");
        assert_eq!(short("alloc::vec::Vec<app::Sample>"), "Vec<Sample>");
        assert_eq!(
            short("(u8, alloc::string::String, [core::option::Option<f32>; 2])"),
            "(u8, String, [Option<f32>; 2])"
        );
        assert_eq!(
            short("std::collections::hash::map::HashMap<alloc::string::String, &str>"),
            "HashMap<String, &str>"
        );
        assert_eq!(short("u64"), "u64");
        assert_eq!(short("app::main::{{closure}}"), "{{closure}}");
    }

    #[test]
    fn a_moved_type_matches_and_a_renamed_one_does_not() {
        let name = "app::model::Sample";
        assert!(unregistered_matches(name, b"app::model::Sample"));
        assert!(unregistered_matches(name, b"app::Sample"));
        assert!(unregistered_matches(
            "alloc::vec::Vec<app::Sample>",
            b"std::vec::Vec<lib::Sample>"
        ));
        assert!(!unregistered_matches(name, b"app::model::Example"));
        assert!(!unregistered_matches(name, b"app::model::Samples"));
        assert!(!unregistered_matches(
            "alloc::vec::Vec<u8>",
            b"alloc::vec::Vec<u16>"
        ));
        assert!(!unregistered_matches("u32", b"u64"));
    }
}
