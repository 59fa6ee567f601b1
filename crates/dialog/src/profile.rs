//! Dialog profiles (Kamailio's `dlg_profile.c`): named groups of dialogs, counted, with or
//! without a value per membership.
//!
//! Two halves hold the same facts: each [`crate::Dialog`] keeps its memberships
//! ([`ProfileLink`]s, what `is_in_profile()` reads and `dlg.list` prints), and the shared
//! [`Profiles`] registry keeps the counts (what `get_profile_size()` and
//! `dlg.profile_get_size` read). [`Profiles::set`] and [`Profiles::unset`] change both; when a
//! dialog reaches state 5 it drops its links and hands them back in
//! [`crate::DialogAction::LeftProfiles`] for the module to pass to [`Profiles::release`].
//!
//! `Profiles` is plain data with `&mut self` methods: the module shares one behind a lock
//! (a `parking_lot::Mutex<Profiles>` is enough: every operation is a few hash lookups). The
//! lock order is dialog bucket, then profiles, never the reverse.

use std::collections::HashMap;

use crate::dialog::Dialog;
use crate::error::DialogError;

/// One membership of a dialog in a profile.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProfileLink {
    /// The profile's name.
    pub profile: String,
    /// The value, for a profile declared with values.
    pub value: Option<String>,
}

impl ProfileLink {
    /// A membership.
    pub fn new(profile: impl Into<String>, value: Option<&str>) -> ProfileLink {
        ProfileLink {
            profile: profile.into(),
            value: value.map(str::to_owned),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Profile {
    with_value: bool,
    size: u64,
    by_value: HashMap<String, u64>,
}

/// The declared profiles and how many dialogs are in each (and per value).
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    profiles: HashMap<String, Profile>,
}

impl Profiles {
    /// No profiles.
    pub fn new() -> Profiles {
        Profiles::default()
    }

    /// The profiles of the module parameters `profiles_no_value` and `profiles_with_value`
    /// (names separated by `;`, white space around names ignored, empty items skipped).
    pub fn from_params(no_value: &str, with_value: &str) -> Result<Profiles, DialogError> {
        let mut p = Profiles::new();
        for (list, has_value) in [(no_value, false), (with_value, true)] {
            for name in list.split(';').map(str::trim).filter(|n| !n.is_empty()) {
                p.declare(name, has_value)?;
            }
        }
        Ok(p)
    }

    /// Declares a profile. A name declared twice is an error (Kamailio refuses to start).
    pub fn declare(&mut self, name: &str, with_value: bool) -> Result<(), DialogError> {
        if name.is_empty() || self.profiles.contains_key(name) {
            return Err(DialogError::BadProfileName(name.to_owned()));
        }
        self.profiles.insert(
            name.to_owned(),
            Profile {
                with_value,
                ..Profile::default()
            },
        );
        Ok(())
    }

    /// Whether the profile was declared with values (`None`: not declared).
    pub fn has_value(&self, name: &str) -> Option<bool> {
        self.profiles.get(name).map(|p| p.with_value)
    }

    /// The declared names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Checks a membership against the declarations: the profile exists, and a value is
    /// given exactly when the profile has values.
    pub fn check(&self, link: &ProfileLink) -> Result<(), DialogError> {
        let p = self
            .profiles
            .get(&link.profile)
            .ok_or_else(|| DialogError::UnknownProfile(link.profile.clone()))?;
        if p.with_value != link.value.is_some() {
            return Err(DialogError::ProfileValue {
                profile: link.profile.clone(),
                with_value: p.with_value,
            });
        }
        Ok(())
    }

    /// `set_dlg_profile(profile[, value])`: adds the dialog to the profile. No duplicate
    /// check, as in Kamailio: adding twice counts twice.
    pub fn set(&mut self, dialog: &mut Dialog, link: ProfileLink) -> Result<(), DialogError> {
        self.check(&link)?;
        self.count(&link, true);
        dialog.push_profile(link);
        Ok(())
    }

    /// `unset_dlg_profile(profile[, value])`: removes one membership; false when the dialog
    /// had none that fits (Kamailio returns -1).
    pub fn unset(&mut self, dialog: &mut Dialog, link: &ProfileLink) -> Result<bool, DialogError> {
        self.check(link)?;
        if dialog.remove_profile(link) {
            self.count(link, false);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Adds counts for memberships made elsewhere (a dialog restored, a DMQ peer).
    pub fn add(&mut self, link: &ProfileLink) -> Result<(), DialogError> {
        self.check(link)?;
        self.count(link, true);
        Ok(())
    }

    /// Removes the counts of memberships a dialog gave up
    /// ([`crate::DialogAction::LeftProfiles`]). Unknown profiles are ignored.
    pub fn release(&mut self, links: &[ProfileLink]) {
        for link in links {
            self.count(link, false);
        }
    }

    /// `get_profile_size(profile[, value])` / `dlg.profile_get_size`: the number of
    /// memberships in the profile, or with that value. A value given for a value-less
    /// profile is ignored (Kamailio counts the whole profile).
    pub fn size(&self, name: &str, value: Option<&str>) -> Result<u64, DialogError> {
        let p = self
            .profiles
            .get(name)
            .ok_or_else(|| DialogError::UnknownProfile(name.to_owned()))?;
        Ok(match value {
            Some(v) if p.with_value => p.by_value.get(v).copied().unwrap_or(0),
            _ => p.size,
        })
    }

    fn count(&mut self, link: &ProfileLink, up: bool) {
        let Some(p) = self.profiles.get_mut(&link.profile) else {
            return;
        };
        let step = |n: &mut u64| {
            *n = if up {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            }
        };
        step(&mut p.size);
        if let Some(v) = &link.value {
            if up {
                step(p.by_value.entry(v.clone()).or_insert(0));
            } else if let Some(n) = p.by_value.get_mut(v) {
                step(n);
                if *n == 0 {
                    p.by_value.remove(v);
                }
            }
        }
    }
}
