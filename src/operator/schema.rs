//! The operator console's tables in `data/operator.sqlite` (migration
//! `tenants/migrations/operator/2026-12-07-000002_operator_console`). The sign-in throttle
//! is the IdP's table shape, declared (and used) as `kollegium_idp::schema::throttle`.

diesel::table! {
    operators (id) {
        id -> BigInt,
        name -> Text,
        email -> Text,
        password_hash -> Nullable<Text>,
        totp_secret -> Nullable<Text>,
        last_totp_step -> BigInt,
        status -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    operator_setup_links (id) {
        id -> BigInt,
        operator_id -> BigInt,
        token_hash -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        pending_password_hash -> Nullable<Text>,
        pending_totp -> Nullable<Text>,
        pending_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    operator_sessions (id) {
        id -> BigInt,
        token_hash -> Text,
        operator_id -> BigInt,
        created_at -> BigInt,
        last_seen_at -> BigInt,
    }
}

diesel::table! {
    operator_audit (id) {
        id -> BigInt,
        at -> BigInt,
        who -> Text,
        action -> Text,
        subject -> Text,
    }
}

diesel::joinable!(operator_setup_links -> operators (operator_id));
diesel::joinable!(operator_sessions -> operators (operator_id));

diesel::allow_tables_to_appear_in_same_query!(
    operators,
    operator_setup_links,
    operator_sessions,
    operator_audit,
);
