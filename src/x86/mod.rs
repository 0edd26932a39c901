//! Pure x86 knowledge, no KVM calls: what the CPU's registers and in-memory tables mean.
//!
//! * [`control_bits`]: the CR0/CR4/EFER bits, named once.
//! * [`mode`]: which execution mode (real, protected, long, ...) the control registers describe.
//! * [`paging`]: walk the guest's page tables to turn a linear address into a physical one.
//! * [`debugreg`]: encode hardware breakpoints/watchpoints into DR0–DR3 and DR7, decode DR6.
//! * [`descriptors`]: decode GDT/LDT descriptors, IDT gates and KVM's segment registers.
//! * [`emulation`]: name the instruction of an emulation failure, from its bytes.
//!
//! Everything here is plain data in, plain data out, so it is unit-tested without a VM.

pub mod control_bits;
pub mod debugreg;
pub mod descriptors;
pub mod emulation;
pub mod mode;
pub mod paging;
