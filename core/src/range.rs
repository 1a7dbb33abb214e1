//! Byte ranges (RFC 9110 §14): the one range a `Range: bytes=…` header
//! asks for, where it falls in content of a known size, and the
//! `Content-Range` that says which bytes an answer carries.

/// One range of bytes, as a `Range` header asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// From this byte to the end (`bytes=N-`).
    From(u64),
    /// From the first byte to the last, both included (`bytes=N-M`).
    Span(u64, u64),
    /// The last this many bytes (`bytes=-N`).
    Suffix(u64),
}

impl ByteRange {
    /// The one range of a `Range` header's value. `None` for anything else
    /// (another unit, several ranges, a malformed or backwards range): a
    /// server may always answer those with the whole content, and does.
    pub fn parse(value: &str) -> Option<ByteRange> {
        let spec = value.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        let number = |s: &str| digits(s.trim());
        match (first.trim().is_empty(), last.trim().is_empty()) {
            (true, false) => number(last).map(ByteRange::Suffix),
            (false, true) => number(first).map(ByteRange::From),
            (false, false) => {
                let (first, last) = (number(first)?, number(last)?);
                (first <= last).then_some(ByteRange::Span(first, last))
            }
            (true, true) => None,
        }
    }

    /// The `Range` header value that asks for it.
    pub fn header_value(&self) -> String {
        match self {
            ByteRange::From(first) => format!("bytes={first}-"),
            ByteRange::Span(first, last) => format!("bytes={first}-{last}"),
            ByteRange::Suffix(n) => format!("bytes=-{n}"),
        }
    }

    /// Where it falls in content of `size` bytes: its first and last byte,
    /// or `None` when none of it is there (the answer is then a 416).
    pub fn resolve(&self, size: u64) -> Option<(u64, u64)> {
        let end = size.checked_sub(1)?;
        match *self {
            ByteRange::From(first) => (first <= end).then_some((first, end)),
            ByteRange::Span(first, last) => (first <= end).then_some((first, last.min(end))),
            ByteRange::Suffix(0) => None,
            ByteRange::Suffix(n) => Some((size - n.min(size), end)),
        }
    }
}

/// What a `Content-Range` says of an answer's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// Bytes `first` to `last` (included) of content of `size` bytes
    /// (`None`: the sender did not say, `*`).
    Bytes {
        /// The first byte sent.
        first: u64,
        /// The last byte sent.
        last: u64,
        /// The whole content's size, when said.
        size: Option<u64>,
    },
    /// A 416's: no range of the content, of `size` bytes (`bytes */N`).
    Unsatisfied {
        /// The whole content's size.
        size: u64,
    },
}

impl ContentRange {
    /// Reads a `Content-Range` value; `None` when it is not one.
    pub fn parse(value: &str) -> Option<ContentRange> {
        let rest = value.trim().strip_prefix("bytes")?;
        let rest = rest.strip_prefix(' ')?.trim();
        let (range, size) = rest.split_once('/')?;
        if range == "*" {
            return digits(size).map(|size| ContentRange::Unsatisfied { size });
        }
        let (first, last) = range.split_once('-')?;
        let (first, last) = (digits(first)?, digits(last)?);
        let size = match size {
            "*" => None,
            size => Some(digits(size)?),
        };
        let fits = first <= last && size.is_none_or(|size| last < size);
        fits.then_some(ContentRange::Bytes { first, last, size })
    }

    /// The header value.
    pub fn header_value(&self) -> String {
        match self {
            ContentRange::Bytes { first, last, size } => match size {
                Some(size) => format!("bytes {first}-{last}/{size}"),
                None => format!("bytes {first}-{last}/*"),
            },
            ContentRange::Unsatisfied { size } => format!("bytes */{size}"),
        }
    }
}

/// A number of decimal digits only (`+5` and `-5`, which `parse` takes or
/// rejects as it likes, are not one); `None` past `u64`.
fn digits(s: &str) -> Option<u64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_range_is_read_and_anything_else_is_the_whole() {
        use ByteRange::*;
        assert_eq!(ByteRange::parse("bytes=5-"), Some(From(5)));
        assert_eq!(ByteRange::parse("bytes=0-9"), Some(Span(0, 9)));
        assert_eq!(ByteRange::parse(" bytes=3-3 "), Some(Span(3, 3)));
        assert_eq!(ByteRange::parse("bytes=-7"), Some(Suffix(7)));
        for whole in [
            "bytes=0-1,5-9",
            "bytes=9-5",
            "bytes=-",
            "bytes=a-",
            "bytes=+1-",
            "bytes=1-+2",
            "items=0-1",
            "bytes 0-1",
            "",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(ByteRange::parse(whole), None, "{whole:?}");
        }
        for range in [From(5), Span(0, 9), Suffix(7)] {
            assert_eq!(ByteRange::parse(&range.header_value()), Some(range));
        }
    }

    #[test]
    fn a_range_falls_in_the_content_or_not_at_all() {
        use ByteRange::*;
        assert_eq!(From(0).resolve(10), Some((0, 9)));
        assert_eq!(From(9).resolve(10), Some((9, 9)));
        assert_eq!(From(10).resolve(10), None);
        assert_eq!(Span(2, 4).resolve(10), Some((2, 4)));
        assert_eq!(Span(2, 400).resolve(10), Some((2, 9)));
        assert_eq!(Span(10, 11).resolve(10), None);
        assert_eq!(Suffix(3).resolve(10), Some((7, 9)));
        assert_eq!(Suffix(30).resolve(10), Some((0, 9)));
        assert_eq!(Suffix(0).resolve(10), None);
        assert_eq!(From(0).resolve(0), None);
        assert_eq!(Suffix(1).resolve(0), None);
    }

    #[test]
    fn content_ranges_read_and_print() {
        let bytes = |first, last, size| ContentRange::Bytes { first, last, size };
        assert_eq!(
            ContentRange::parse("bytes 0-9/10"),
            Some(bytes(0, 9, Some(10)))
        );
        assert_eq!(ContentRange::parse("bytes 4-5/*"), Some(bytes(4, 5, None)));
        assert_eq!(
            ContentRange::parse("bytes */10"),
            Some(ContentRange::Unsatisfied { size: 10 })
        );
        for bad in [
            "bytes 5-4/10",
            "bytes 0-10/10",
            "bytes 0-1",
            "bytes=0-1/2",
            "items 0-1/2",
            "bytes -1/2",
            "bytes +1-2/10",
            "bytes 1-+2/10",
            "bytes */*",
            "",
        ] {
            assert_eq!(ContentRange::parse(bad), None, "{bad:?}");
        }
        for value in ["bytes 0-9/10", "bytes 4-5/*", "bytes */10"] {
            assert_eq!(ContentRange::parse(value).unwrap().header_value(), value);
        }
    }
}
