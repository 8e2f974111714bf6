//! Field paths (`layers[3].weights`) for error messages, tracked only when an error needs one.
//!
//! Encoding and decoding run first with [`NoPath`], which compiles to nothing. Only when that
//! fails is the work redone with [`Path`] to find where, so the common case pays nothing.

/// One step into a value.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Segment {
    /// A struct field.
    Field(&'static str),
    /// An element of a sequence or tuple, or a map entry.
    Index(usize),
    /// An enum variant.
    Variant(&'static str),
}

/// Where an encoder or decoder is within a value.
pub(crate) trait Track: Default {
    /// Whether this tracker records anything; when not, callers skip even counting elements.
    const ON: bool;
    /// Steps into `segment`.
    fn push(&mut self, segment: Segment);
    /// Steps back out, after the step succeeded.
    fn pop(&mut self);
    /// The path, if tracked.
    fn render(&self) -> Option<String>;
}

/// No tracking: the fast path.
#[derive(Default)]
pub(crate) struct NoPath;

impl Track for NoPath {
    const ON: bool = false;
    #[inline(always)]
    fn push(&mut self, _: Segment) {}
    #[inline(always)]
    fn pop(&mut self) {}
    fn render(&self) -> Option<String> {
        None
    }
}

/// Full tracking. On failure the steps are left in place, so the path names the failing field.
#[derive(Default)]
pub(crate) struct Path(Vec<Segment>);

impl Track for Path {
    const ON: bool = true;
    fn push(&mut self, segment: Segment) {
        self.0.push(segment);
    }
    fn pop(&mut self) {
        self.0.pop();
    }
    fn render(&self) -> Option<String> {
        let mut out = String::new();
        for segment in &self.0 {
            match segment {
                Segment::Field(name) | Segment::Variant(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_rust_expressions() {
        let mut path = Path::default();
        path.push(Segment::Field("layers"));
        path.push(Segment::Index(3));
        path.push(Segment::Field("weights"));
        assert_eq!(path.render().as_deref(), Some("layers[3].weights"));
        path.pop();
        path.push(Segment::Variant("Dense"));
        assert_eq!(path.render().as_deref(), Some("layers[3].Dense"));
        assert_eq!(NoPath.render(), None);
    }
}
