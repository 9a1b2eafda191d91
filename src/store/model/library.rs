//! Assets and styles: what accounts upload.
use time::OffsetDateTime;
use uuid::Uuid;

/// An uploaded file (Krea's asset). The bytes live in storage under `file_key`.
#[derive(Clone, Debug, PartialEq)]
pub struct Asset {
    pub id: Uuid,
    pub account_id: Uuid,
    /// `assets/<unguessable>.<ext>`: also the last part of its public URL.
    pub file_key: String,
    pub mime_type: String,
    pub size_bytes: u64,
    /// Set for images.
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub description: Option<String>,
    pub uploaded_at: OffsetDateTime,
}

/// A LoRA style. Its `.safetensors` file lives in storage under `file_key`.
#[derive(Clone, Debug, PartialEq)]
pub struct Style {
    pub id: Uuid,
    pub account_id: Uuid,
    /// The owner account's name (Krea's `owner.name`).
    pub owner_name: String,
    pub title: Option<String>,
    pub prompt: String,
    pub public: bool,
    pub urls: Vec<String>,
    pub cover_url: Option<String>,
    pub file_key: String,
    pub size_bytes: u64,
    pub lora_rank: u32,
    pub created_at: OffsetDateTime,
}

/// `PATCH /styles/{id}`: the fields given change, the others stay.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StylePatch {
    pub title: Option<String>,
    pub public: Option<bool>,
    pub urls: Option<Vec<String>>,
    pub cover_url: Option<String>,
}

impl StylePatch {
    /// The style with the given fields changed.
    pub fn apply(self, current: Style) -> Style {
        Style {
            title: self.title.or(current.title),
            public: self.public.unwrap_or(current.public),
            urls: self.urls.unwrap_or(current.urls),
            cover_url: self.cover_url.or(current.cover_url),
            ..current
        }
    }
}

/// Which styles `GET /styles` lists for an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StyleFilter {
    /// The account's own.
    Own,
    /// Anyone's public ones.
    Public,
    /// Own and public.
    All,
}

#[derive(Clone, Debug)]
pub struct StyleQuery {
    pub filter: StyleFilter,
    /// Only this owner's (Krea's `user` parameter).
    pub owner: Option<Uuid>,
    /// Where the page resumes (newest first).
    pub before: Option<LibraryCursor>,
    pub limit: u32,
}

/// Where a newest-first page of assets or styles resumes: the items older than `time`, after
/// those at `time` whose id is below `id` (when given), so items sharing a time are neither
/// skipped nor repeated. Lists are ordered by time, then id, both descending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LibraryCursor {
    pub time: OffsetDateTime,
    pub id: Option<Uuid>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StyleDeleteRefusal {
    NotFound,
    /// Unfinished jobs still use it.
    InUse {
        jobs: u64,
    },
}
