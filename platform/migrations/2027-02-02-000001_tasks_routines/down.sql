DROP TABLE task_reminder_settings;
DROP TABLE task_templates;
DROP INDEX task_cards_series;
ALTER TABLE task_cards DROP COLUMN series_id;
DROP TABLE task_series;
