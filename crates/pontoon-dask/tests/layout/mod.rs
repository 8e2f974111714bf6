//! The dask_message fuzz target's and the seed replay's comparison of two values printed as
//! JSON, layouts aside: shared by both as a file, since the fuzz crate cannot use test code.

/// `json` without its arrays' `"strides":[…]` entries (inside a JSON string the quotes would be
/// escaped, so the text cannot occur there).
pub(crate) fn without_strides(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut rest = json;
    while let Some(at) = rest.find(r#","strides":["#) {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        rest = after.find(']').map_or("", |end| &after[end + 1..]);
    }
    out.push_str(rest);
    out
}
