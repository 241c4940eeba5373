# "2 décembre 2026", "2 décembre 2026 à 14:05"
DATE_FORMAT = "j F Y"
DATETIME_FORMAT = "j F Y à H:i"
