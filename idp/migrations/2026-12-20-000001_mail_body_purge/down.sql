-- Purged bodies cannot be restored; nothing to undo.
SELECT 1;
