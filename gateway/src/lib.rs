//! Octo's server. It starts with [`users`]: accounts, password hashes, bearer tokens. The
//! WebSocket, GraphQL and the dispatcher join it with the end-to-end issue.

pub mod users;
