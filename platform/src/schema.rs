//! diesel schema of `platform.sqlite` (mirrors `migrations/`; the `settings` table is
//! `kollegium_tenants::kv`).

diesel::table! {
    members (id) {
        id -> BigInt,
        sub -> Text,
        username -> Text,
        display_name -> Text,
        email -> Text,
        roles -> Text,
        is_admin -> Bool,
        specialty -> Nullable<Text>,
        kv_region -> Nullable<Text>,
        work_areas -> Text,
        send_read_receipts -> Bool,
        mention_mail -> Bool,
        mention_mail_delay_secs -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        last_login_at -> Nullable<BigInt>,
        deactivated_at -> Nullable<BigInt>,
        listed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        token_hash -> Text,
        member_id -> BigInt,
        idp_sid -> Nullable<Text>,
        id_token -> Text,
        access_token -> Text,
        refresh_token -> Nullable<Text>,
        access_expires_at -> BigInt,
        created_at -> BigInt,
        last_seen_at -> BigInt,
        ended_at -> Nullable<BigInt>,
        end_reason -> Nullable<Text>,
    }
}

diesel::table! {
    rooms (id) {
        id -> BigInt,
        kind -> Text,
        name -> Text,
        topic -> Text,
        visibility -> Text,
        archived -> Bool,
        direct_key -> Nullable<Text>,
        created_by -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
        last_message_id -> Nullable<BigInt>,
        is_default -> Bool,
    }
}

diesel::table! {
    room_members (room_id,member_id) {
        room_id -> BigInt,
        member_id -> BigInt,
        joined_at -> BigInt,
        last_read_id -> BigInt,
        moderator -> Bool,
    }
}

diesel::table! {
    messages (id) {
        id -> BigInt,
        room_id -> BigInt,
        author_id -> Nullable<BigInt>,
        body -> Text,
        reply_to -> Nullable<BigInt>,
        mentions -> Text,
        mentions_all -> Bool,
        created_at -> BigInt,
        edited_at -> Nullable<BigInt>,
        deleted_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    reactions (message_id,member_id,emoji) {
        message_id -> BigInt,
        member_id -> BigInt,
        emoji -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    mention_notices (id) {
        id -> BigInt,
        member_id -> BigInt,
        room_id -> BigInt,
        message_id -> BigInt,
        due_at -> BigInt,
        done_at -> Nullable<BigInt>,
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

diesel::joinable!(room_members -> rooms (room_id));
diesel::joinable!(room_members -> members (member_id));
diesel::joinable!(messages -> rooms (room_id));
diesel::joinable!(sessions -> members (member_id));

diesel::allow_tables_to_appear_in_same_query!(
    members,
    sessions,
    rooms,
    room_members,
    messages,
    reactions,
    mention_notices,
    jobs,
    mail_queue,
);

diesel::table! {
    task_boards (id) {
        id -> BigInt,
        title -> Text,
        description -> Text,
        archived_at -> Nullable<BigInt>,
        created_by -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    task_board_access (id) {
        id -> BigInt,
        board_id -> BigInt,
        kind -> Text,
        role -> Nullable<Text>,
        member_id -> Nullable<BigInt>,
        permission -> Text,
    }
}

diesel::table! {
    task_columns (id) {
        id -> BigInt,
        board_id -> BigInt,
        title -> Text,
        position -> BigInt,
        is_done -> Bool,
        created_at -> BigInt,
    }
}

diesel::table! {
    task_labels (id) {
        id -> BigInt,
        board_id -> BigInt,
        name -> Text,
        color -> Text,
    }
}

diesel::table! {
    task_cards (id) {
        id -> BigInt,
        board_id -> BigInt,
        column_id -> BigInt,
        position -> BigInt,
        title -> Text,
        description -> Text,
        due_at -> Nullable<BigInt>,
        due_all_day -> Bool,
        done_at -> Nullable<BigInt>,
        archived_at -> Nullable<BigInt>,
        created_by -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
        series_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    task_card_labels (card_id, label_id) {
        card_id -> BigInt,
        label_id -> BigInt,
    }
}

diesel::table! {
    task_card_assignees (card_id, member_id) {
        card_id -> BigInt,
        member_id -> BigInt,
    }
}

diesel::table! {
    task_checklist_items (id) {
        id -> BigInt,
        card_id -> BigInt,
        position -> BigInt,
        text -> Text,
        done_at -> Nullable<BigInt>,
        done_by -> Nullable<BigInt>,
    }
}

diesel::table! {
    task_comments (id) {
        id -> BigInt,
        card_id -> BigInt,
        author_id -> Nullable<BigInt>,
        body -> Text,
        mentions -> Text,
        created_at -> BigInt,
        edited_at -> Nullable<BigInt>,
        deleted_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    task_card_events (id) {
        id -> BigInt,
        card_id -> BigInt,
        actor_id -> Nullable<BigInt>,
        what -> Text,
        detail -> Text,
        at -> BigInt,
    }
}

diesel::joinable!(task_board_access -> task_boards (board_id));
diesel::joinable!(task_columns -> task_boards (board_id));
diesel::joinable!(task_cards -> task_columns (column_id));
diesel::joinable!(task_cards -> task_boards (board_id));
diesel::joinable!(task_card_labels -> task_cards (card_id));
diesel::joinable!(task_card_labels -> task_labels (label_id));
diesel::joinable!(task_card_assignees -> task_cards (card_id));
diesel::joinable!(task_card_assignees -> members (member_id));
diesel::joinable!(task_checklist_items -> task_cards (card_id));
diesel::joinable!(task_comments -> task_cards (card_id));
diesel::joinable!(task_card_events -> task_cards (card_id));

diesel::allow_tables_to_appear_in_same_query!(
    members,
    task_boards,
    task_board_access,
    task_columns,
    task_labels,
    task_cards,
    task_card_labels,
    task_card_assignees,
    task_checklist_items,
    task_comments,
    task_card_events,
);

// Tasks routines (issue 13, `tasks::routines`): series, templates, reminder settings.

diesel::table! {
    task_series (id) {
        id -> BigInt,
        board_id -> BigInt,
        column_id -> Nullable<BigInt>,
        title -> Text,
        description -> Text,
        checklist -> Text,
        assignees -> Text,
        labels -> Text,
        rule -> Text,
        time_of_day -> Text,
        mode -> Text,
        paused_at -> Nullable<BigInt>,
        ended_at -> Nullable<BigInt>,
        next_due_at -> Nullable<BigInt>,
        created_by -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    task_templates (id) {
        id -> BigInt,
        board_id -> BigInt,
        kind -> Text,
        name -> Text,
        title -> Text,
        description -> Text,
        checklist -> Text,
        labels -> Text,
        created_by -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    task_reminder_settings (member_id) {
        member_id -> BigInt,
        enabled -> Bool,
        lead_minutes -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(task_reminder_settings, task_card_assignees);
diesel::allow_tables_to_appear_in_same_query!(task_reminder_settings, task_cards);

// The practice file store (`platform::filestore`) and task attachments.

diesel::table! {
    file_blobs (hash) {
        hash -> Text,
        size -> BigInt,
        refs -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    task_attachments (id) {
        id -> BigInt,
        card_id -> BigInt,
        blob_hash -> Text,
        name -> Text,
        content_type -> Text,
        size -> BigInt,
        uploaded_by -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::joinable!(task_attachments -> task_cards (card_id));
diesel::joinable!(task_attachments -> file_blobs (blob_hash));
diesel::allow_tables_to_appear_in_same_query!(task_attachments, task_cards, file_blobs);
diesel::allow_tables_to_appear_in_same_query!(task_attachments, members);

diesel::table! {
    news_state (member_id, message_id) {
        member_id -> BigInt,
        message_id -> Text,
        read_at -> Nullable<BigInt>,
        dismissed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    news_mail_opt_out (member_id) {
        member_id -> BigInt,
        since -> BigInt,
    }
}
diesel::allow_tables_to_appear_in_same_query!(news_mail_opt_out, members);
