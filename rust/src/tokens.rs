//! tokens: to be implemented (see issue 2).
