//! What an action did, told on the page it returns to: every POST of the account and the
//! administration redirects to `<page>?done=<code>`, and the page shows the German notice
//! of that code (one list, here). An unknown code shows nothing: the text never comes from
//! the address.

/// The outcome of an action, named in the `done` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Saved,
    Invited,
    Deleted,
    Unlocked,
    LinkSent,
    InvitationResent,
    Disabled,
    Enabled,
    TotpReset,
    ProfileSaved,
    PasswordChanged,
    SessionEnded,
    OthersEnded,
    DeviceNamed,
    TotpDisabled,
    AppRevoked,
    ClientSaved,
    ClientEnabled,
    ClientDisabled,
    DeviceApproved,
    DeviceRejected,
    DeviceSuspended,
    DeviceRemoved,
    DeviceRenamed,
    PolicySaved,
}

impl Done {
    const ALL: &'static [Done] = &[
        Self::Saved,
        Self::Invited,
        Self::Deleted,
        Self::Unlocked,
        Self::LinkSent,
        Self::InvitationResent,
        Self::Disabled,
        Self::Enabled,
        Self::TotpReset,
        Self::ProfileSaved,
        Self::PasswordChanged,
        Self::SessionEnded,
        Self::OthersEnded,
        Self::DeviceNamed,
        Self::TotpDisabled,
        Self::AppRevoked,
        Self::ClientSaved,
        Self::ClientEnabled,
        Self::ClientDisabled,
        Self::DeviceApproved,
        Self::DeviceRejected,
        Self::DeviceSuspended,
        Self::DeviceRemoved,
        Self::DeviceRenamed,
        Self::PolicySaved,
    ];

    /// The code in the address (`?done=<code>`).
    pub const fn code(self) -> &'static str {
        match self {
            Self::Saved => "saved",
            Self::Invited => "invited",
            Self::Deleted => "deleted",
            Self::Unlocked => "unlocked",
            Self::LinkSent => "link-sent",
            Self::InvitationResent => "invitation-resent",
            Self::Disabled => "disabled",
            Self::Enabled => "enabled",
            Self::TotpReset => "totp-reset",
            Self::ProfileSaved => "profile",
            Self::PasswordChanged => "password",
            Self::SessionEnded => "sessions",
            Self::OthersEnded => "others-ended",
            Self::DeviceNamed => "device-named",
            Self::TotpDisabled => "totp-disabled",
            Self::AppRevoked => "app-revoked",
            Self::ClientSaved => "client-saved",
            Self::ClientEnabled => "client-enabled",
            Self::ClientDisabled => "client-disabled",
            Self::DeviceApproved => "device-approved",
            Self::DeviceRejected => "device-rejected",
            Self::DeviceSuspended => "device-suspended",
            Self::DeviceRemoved => "device-removed",
            Self::DeviceRenamed => "device-renamed",
            Self::PolicySaved => "policy-saved",
        }
    }

    /// What the person reads on the page.
    pub const fn text(self) -> &'static str {
        match self {
            Self::Saved => "Gespeichert.",
            Self::Invited => "Die Einladung wurde verschickt.",
            Self::Deleted => "Das Konto wurde gelöscht.",
            Self::Unlocked => "Entsperrt. Die Anmeldung ist wieder möglich.",
            Self::LinkSent => {
                "Link gesendet: Die Person bekommt eine E-Mail mit einem Link \
                               zum Zurücksetzen des Passworts."
            }
            Self::InvitationResent => "Die Einladung wurde erneut gesendet.",
            Self::Disabled => "Konto deaktiviert. Alle Sitzungen dieses Kontos wurden beendet.",
            Self::Enabled => "Konto aktiviert. Die Anmeldung ist wieder möglich.",
            Self::TotpReset => {
                "Die Zwei-Faktor-Anmeldung wurde zurückgesetzt. Bei der nächsten \
                                Anmeldung reicht das Passwort."
            }
            Self::ProfileSaved => "Ihr Profil wurde gespeichert.",
            Self::PasswordChanged => {
                "Ihr Passwort wurde geändert. Alle anderen Sitzungen wurden beendet."
            }
            Self::SessionEnded => "Die Sitzung wurde beendet.",
            Self::OthersEnded => "Alle anderen Sitzungen wurden beendet.",
            Self::DeviceNamed => "Der Gerätename wurde gespeichert.",
            Self::TotpDisabled => "Die Zwei-Faktor-Anmeldung wurde deaktiviert.",
            Self::AppRevoked => "Der Zugriff der Anwendung wurde widerrufen.",
            Self::ClientSaved => "Die Anwendung wurde gespeichert.",
            Self::ClientEnabled => "Die Anwendung wurde aktiviert.",
            Self::ClientDisabled => {
                "Die Anwendung wurde deaktiviert. Niemand kann sich mehr darüber anmelden."
            }
            Self::DeviceApproved => "Das Gerät wurde freigegeben.",
            Self::DeviceRejected => "Das Gerät wurde abgelehnt.",
            Self::DeviceSuspended => "Das Gerät wurde gesperrt; seine Sitzungen sind beendet.",
            Self::DeviceRemoved => "Das Gerät wurde entfernt; seine Sitzungen sind beendet.",
            Self::DeviceRenamed => "Der Gerätename wurde gespeichert.",
            Self::PolicySaved => "Die Einstellungen wurden gespeichert.",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|d| d.code() == code)
    }

    /// `path?done=<code>`: where a POST redirects to.
    pub fn at(self, path: &str) -> String {
        format!("{path}?done={}", self.code())
    }
}

/// The `done` query parameter of a page (other parameters are ignored).
#[derive(Debug, Default, serde::Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

impl DoneQuery {
    pub fn done(&self) -> Option<Done> {
        self.done.as_deref().and_then(Done::parse)
    }

    /// The notice to show, if the code is one of ours.
    pub fn notice(&self) -> Option<&'static str> {
        self.done().map(Done::text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_distinct_and_reads_back() {
        let mut codes: Vec<_> = Done::ALL.iter().map(|d| d.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Done::ALL.len());
        for d in Done::ALL {
            assert_eq!(Done::parse(d.code()), Some(*d));
            assert!(d.text().ends_with('.'), "{d:?}");
        }
        assert_eq!(Done::parse("<b>x</b>"), None);
        assert_eq!(Done::Saved.at("/id/account"), "/id/account?done=saved");
    }
}
