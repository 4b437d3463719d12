//! Credit-based flow control of one edge, sans-IO: the receiver grants rows and bytes as its
//! bounded buffer drains; the sender never sends past the credit it holds.

/// A frame's cost in credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cost {
    /// Rows in the frame.
    pub rows: u64,
    /// Payload bytes of the frame.
    pub bytes: u64,
}

impl Cost {
    /// A cost of `rows` rows and `bytes` bytes.
    pub fn new(rows: u64, bytes: u64) -> Self {
        Self { rows, bytes }
    }
}

/// A violation of the credit protocol or of its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditError {
    /// The sender sent more than the credit it was granted.
    #[error(
        "sender overran its credit: frame of {rows} rows / {bytes} bytes, credit {credit_rows} rows / {credit_bytes} bytes"
    )]
    Overrun {
        /// Rows in the frame.
        rows: u64,
        /// Bytes in the frame.
        bytes: u64,
        /// Rows of credit left.
        credit_rows: u64,
        /// Bytes of credit left.
        credit_bytes: u64,
    },
    /// A frame can never be sent: it is larger than the receiver's whole window.
    #[error(
        "frame of {rows} rows / {bytes} bytes exceeds the credit window of {window_rows} rows / {window_bytes} bytes"
    )]
    LargerThanWindow {
        /// Rows in the frame.
        rows: u64,
        /// Bytes in the frame.
        bytes: u64,
        /// The window's rows.
        window_rows: u64,
        /// The window's bytes.
        window_bytes: u64,
    },
    /// The receiver returned more than it ever received.
    #[error("drained more than was buffered")]
    OverDrained,
    /// A window of zero rows or bytes would block the edge forever.
    #[error("a credit window needs at least one row and one byte")]
    EmptyWindow,
}

/// The sending side's credit.
#[derive(Debug, Clone, Default)]
pub struct CreditSender {
    rows: u64,
    bytes: u64,
}

impl CreditSender {
    /// A sender holding no credit (it waits for the receiver's first grant).
    pub fn new() -> Self {
        Self::default()
    }
    /// Credit left: rows and bytes.
    pub fn available(&self) -> Cost {
        Cost::new(self.rows, self.bytes)
    }
    /// Whether a frame of `cost` may be sent now.
    pub fn can_send(&self, cost: Cost) -> bool {
        cost.rows <= self.rows && cost.bytes <= self.bytes
    }
    /// Takes `cost` from the credit, or returns `false` (taking nothing) when it does not fit.
    pub fn try_send(&mut self, cost: Cost) -> bool {
        if !self.can_send(cost) {
            return false;
        }
        self.rows -= cost.rows;
        self.bytes -= cost.bytes;
        true
    }
    /// Adds a grant from the receiver.
    pub fn grant(&mut self, grant: Cost) {
        self.rows = self.rows.saturating_add(grant.rows);
        self.bytes = self.bytes.saturating_add(grant.bytes);
    }
}

/// The receiving side: its window, what it holds, and what it has drained but not yet granted.
#[derive(Debug, Clone)]
pub struct CreditReceiver {
    window: Cost,
    /// Credit the sender holds according to the receiver.
    outstanding: Cost,
    buffered: Cost,
    released: Cost,
}

impl CreditReceiver {
    /// A receiver with a buffer of `window` (rows and bytes); [`CreditReceiver::initial_grant`]
    /// is the first credit to send.
    pub fn new(window: Cost) -> Result<Self, CreditError> {
        if window.rows == 0 || window.bytes == 0 {
            return Err(CreditError::EmptyWindow);
        }
        Ok(Self {
            window,
            outstanding: Cost::default(),
            buffered: Cost::default(),
            released: window,
        })
    }
    /// The window.
    pub fn window(&self) -> Cost {
        self.window
    }
    /// Rows and bytes received and not yet drained.
    pub fn buffered(&self) -> Cost {
        self.buffered
    }
    /// The whole window, granted once at the start.
    pub fn initial_grant(&mut self) -> Cost {
        self.take_grant()
    }
    /// Accounts a received frame; an overrun is a protocol violation of the sender.
    pub fn on_frame(&mut self, cost: Cost) -> Result<(), CreditError> {
        if cost.rows > self.outstanding.rows || cost.bytes > self.outstanding.bytes {
            return Err(CreditError::Overrun {
                rows: cost.rows,
                bytes: cost.bytes,
                credit_rows: self.outstanding.rows,
                credit_bytes: self.outstanding.bytes,
            });
        }
        self.outstanding.rows -= cost.rows;
        self.outstanding.bytes -= cost.bytes;
        self.buffered.rows += cost.rows;
        self.buffered.bytes += cost.bytes;
        Ok(())
    }
    /// Accounts `cost` leaving the buffer; returns the grant to send, if one is due: once half
    /// the window is free to grant, or everything drained (so a sender waiting for a large
    /// frame's credit is never stuck).
    pub fn on_drained(&mut self, cost: Cost) -> Result<Option<Cost>, CreditError> {
        if cost.rows > self.buffered.rows || cost.bytes > self.buffered.bytes {
            return Err(CreditError::OverDrained);
        }
        self.buffered.rows -= cost.rows;
        self.buffered.bytes -= cost.bytes;
        self.released.rows += cost.rows;
        self.released.bytes += cost.bytes;
        let half = self.released.rows * 2 >= self.window.rows
            || self.released.bytes * 2 >= self.window.bytes;
        let empty = self.buffered == Cost::default();
        let any = self.released != Cost::default();
        Ok((any && (half || empty)).then(|| self.take_grant()))
    }
    fn take_grant(&mut self) -> Cost {
        let g = std::mem::take(&mut self.released);
        self.outstanding.rows += g.rows;
        self.outstanding.bytes += g.bytes;
        g
    }
    /// Checks a frame of `cost` can ever be sent through this window.
    pub fn check_fits(&self, cost: Cost) -> Result<(), CreditError> {
        fits(self.window, cost)
    }
}

/// Checks a frame of `cost` fits a window (else the sender would wait forever).
pub fn fits(window: Cost, cost: Cost) -> Result<(), CreditError> {
    if cost.rows > window.rows || cost.bytes > window.bytes {
        return Err(CreditError::LargerThanWindow {
            rows: cost.rows,
            bytes: cost.bytes,
            window_rows: window.rows,
            window_bytes: window.bytes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
