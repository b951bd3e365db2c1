DROP TABLE task_attachments;
