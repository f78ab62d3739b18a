//! `names!`: an enum of fixed names (audit event kinds, metric labels) declared once — its
//! variants, `ALL` in declaration order, `as_str()` and `parse()` — so the list and the strings
//! cannot drift apart.

/// Declares `enum $name { Variant => "text", … }` with `ALL`, `as_str()` and `parse()`.
macro_rules! names {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// The name as it is written (in the log, the exposition, on the command line).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value written `s`, if any.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.into_iter().find(|v| v.as_str() == s)
            }
        }
    };
}

pub(crate) use names;
