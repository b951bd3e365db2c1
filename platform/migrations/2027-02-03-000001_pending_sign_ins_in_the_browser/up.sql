-- Pending sign-ins live, sealed, in a cookie of the browser that started them
-- (`platform/src/auth/pending.rs`): an anonymous page load neither opens nor writes this
-- database. Sign-ins pending at the upgrade are started again.
DROP TABLE login_states;
