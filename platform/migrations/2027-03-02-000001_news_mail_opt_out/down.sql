DROP TABLE news_mail_opt_out;
