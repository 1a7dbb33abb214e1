//! What the fault proxy does to uploads (`PATCH` and `PUT` bodies) as a
//! whole rather than per request: counts every body byte clients send, cuts
//! the connection once a total is reached (a copy cut at 90% of its
//! upload), buffers bodies before passing them on (as nginx does by default,
//! so a cut chunk never reaches the registry), and refuses bodies over a
//! size with 413 (as Cloudflare does above 100 MB).

/// The upload rules and counts of one proxy.
#[derive(Debug, Default)]
pub struct UploadFaults {
    /// Body bytes received from clients in PATCHes and PUTs.
    pub received: u64,
    /// Cut the request under way once `received` reaches this (once).
    cut_at: Option<u64>,
    /// Whole bodies are read before anything goes to the registry.
    pub buffered: bool,
    /// Bodies longer than this are answered 413 unread.
    pub refuse_over: Option<u64>,
    /// Requests refused with 413.
    pub refused: usize,
    /// Each upload request's method, path and body length, in order.
    pub bodies: Vec<(String, String, u64)>,
}

/// How the proxy handles one request's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPlan {
    /// Pass it all on.
    Forward,
    /// Cut the connection after this many bytes of it.
    CutAfter(u64),
    /// Answer 413 without reading it.
    TooLarge,
}

impl UploadFaults {
    /// From now on, the upload byte that makes `total` cuts its connection (once).
    pub fn cut_at(&mut self, total: u64) {
        self.cut_at = Some(total);
    }

    /// What happens to a `method` request with `length` body bytes.
    pub fn plan(&mut self, method: &str, path: &str, length: u64) -> BodyPlan {
        if !matches!(method, "PATCH" | "PUT") || !path.contains("/blobs/uploads/") {
            return BodyPlan::Forward;
        }
        self.bodies
            .push((method.to_string(), path.to_string(), length));
        if length == 0 {
            return BodyPlan::Forward;
        }
        if self.refuse_over.is_some_and(|limit| length > limit) {
            self.refused += 1;
            return BodyPlan::TooLarge;
        }
        match self.cut_at {
            Some(at) if self.received + length >= at => {
                self.cut_at = None;
                BodyPlan::CutAfter(at.saturating_sub(self.received))
            }
            _ => BodyPlan::Forward,
        }
    }
}
