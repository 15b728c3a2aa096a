//! Recurrent layers (in progress).
