# English dates as the pages always wrote them ("2 December 2026"), not Django's US default.
DATE_FORMAT = "j F Y"
DATETIME_FORMAT = "j F Y, H:i"
SHORT_DATE_FORMAT = "Y-m-d"
