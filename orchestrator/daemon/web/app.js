/* the daemon's page */
