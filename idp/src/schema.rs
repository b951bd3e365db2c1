//! diesel schema of `idp.sqlite` (mirrors `migrations/`; the `settings` table is
//! `kollegium_tenants::kv`).

diesel::table! {
    users (id) {
        id -> BigInt,
        sub -> Text,
        username -> Text,
        email -> Text,
        email_verified -> Bool,
        display_name -> Text,
        password_hash -> Nullable<Text>,
        status -> Text,
        is_admin -> Bool,
        is_owner -> Bool,
        roles -> Text,
        specialty -> Nullable<Text>,
        kv_region -> Nullable<Text>,
        work_areas -> Text,
        totp_secret -> Nullable<Text>,
        totp_last_step -> Nullable<BigInt>,
        failed_logins -> BigInt,
        last_failed_at -> Nullable<BigInt>,
        locked_until -> Nullable<BigInt>,
        password_changed_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> BigInt,
        user_id -> BigInt,
        code_hash -> Text,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    action_tokens (id) {
        id -> BigInt,
        token_hash -> Text,
        user_id -> BigInt,
        kind -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    devices (id) {
        id -> BigInt,
        user_id -> BigInt,
        cookie_hash -> Text,
        name -> Nullable<Text>,
        status -> Text,
        user_agent -> Text,
        ip -> Text,
        created_at -> BigInt,
        decided_at -> Nullable<BigInt>,
        decided_by -> Nullable<BigInt>,
        last_seen_at -> BigInt,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        token_hash -> Text,
        sid -> Text,
        user_id -> BigInt,
        stage -> Text,
        device_id -> Nullable<BigInt>,
        amr -> Text,
        auth_time -> BigInt,
        created_at -> BigInt,
        last_seen_at -> BigInt,
        user_agent -> Text,
        ip -> Text,
        ended_at -> Nullable<BigInt>,
        end_reason -> Nullable<Text>,
        device_name -> Nullable<Text>,
    }
}

diesel::table! {
    throttle (key) {
        key -> Text,
        failures -> BigInt,
        last_failure_at -> BigInt,
        locked_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    clients (id) {
        id -> BigInt,
        client_id -> Text,
        name -> Text,
        secret_hash -> Nullable<Text>,
        confidential -> Bool,
        first_party -> Bool,
        redirect_uris -> Text,
        post_logout_uris -> Text,
        backchannel_logout_uri -> Nullable<Text>,
        allowed_scopes -> Text,
        launch_url -> Nullable<Text>,
        initiate_login_uri -> Nullable<Text>,
        enabled -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
        signing_alg -> Text,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        private_wrapped -> Text,
        public_jwk -> Text,
        created_at -> BigInt,
        retired_at -> Nullable<BigInt>,
        publish_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    grants (id) {
        id -> Text,
        client_id -> Text,
        user_id -> Nullable<BigInt>,
        session_id -> Nullable<BigInt>,
        scope -> Text,
        auth_time -> Nullable<BigInt>,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        revoked_reason -> Nullable<Text>,
    }
}

diesel::table! {
    auth_codes (code_hash) {
        code_hash -> Text,
        client_id -> Text,
        user_id -> BigInt,
        session_id -> Nullable<BigInt>,
        redirect_uri -> Text,
        scope -> Text,
        nonce -> Nullable<Text>,
        code_challenge -> Nullable<Text>,
        auth_time -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        grant_id -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        grant_id -> Text,
        client_id -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        rotated_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    access_tokens (jti) {
        jti -> Text,
        grant_id -> Nullable<Text>,
        client_id -> Text,
        user_id -> Nullable<BigInt>,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    consents (user_id,client_id) {
        user_id -> BigInt,
        client_id -> Text,
        scopes -> Text,
        granted_at -> BigInt,
    }
}

diesel::table! {
    session_clients (session_id,client_id) {
        session_id -> BigInt,
        client_id -> Text,
    }
}

diesel::table! {
    jobs (id) {
        id -> BigInt,
        kind -> Text,
        key -> Text,
        payload -> Nullable<Text>,
        priority -> BigInt,
        revision -> BigInt,
        attempts -> BigInt,
        run_after -> BigInt,
        last_error -> Nullable<Text>,
        failed_at -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    mail_queue (id) {
        id -> BigInt,
        kind -> Text,
        recipient -> Text,
        subject -> Text,
        body_text -> Text,
        body_html -> Text,
        created_at -> BigInt,
        attempts -> BigInt,
        next_attempt_at -> BigInt,
        sent_at -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        failed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    security_events (id) {
        id -> BigInt,
        at -> BigInt,
        kind -> Text,
        user_id -> Nullable<BigInt>,
        actor_id -> Nullable<BigInt>,
        client_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        detail -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    users,
    recovery_codes,
    action_tokens,
    devices,
    sessions,
    throttle,
    clients,
    signing_keys,
    grants,
    auth_codes,
    refresh_tokens,
    access_tokens,
    consents,
    session_clients,
    jobs,
    mail_queue,
    security_events,
);
