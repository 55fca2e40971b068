// Input:
// #[wsk_endpoint(kind = "listen", addr = "127.0.0.1:80", events(accept))]
// pub struct Accepting;
//
// Output (WSK_BLESS=1 cargo test -p wsk-macros to update):

pub struct Accepting;
const _: () = {
    static __WSK_CONFIG: ::wsk::__private::Config = ::wsk::__private::Config {
        name: "Accepting",
        addr: ::wsk::__private::SocketAddr::from_sockaddr_in_bytes([
            2u8, 0u8, 0u8, 80u8, 127u8, 0u8, 0u8, 1u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8,
            0u8,
        ]),
        remote: ::core::option::Option::None,
        max_connections: 64u32,
        exclusive: false,
        v6only: ::core::option::Option::None,
        events: ::wsk::__private::Events {
            accept: true,
            receive: false,
            disconnect: false,
        },
    };
    #[automatically_derived]
    impl ::wsk::Endpoint for Accepting {
        fn config(&self) -> &'static ::wsk::__private::Config {
            &__WSK_CONFIG
        }
        fn start_with(
            &'static self,
            __wsk_rt: &'static ::wsk::Runtime,
            __wsk_addr: ::core::option::Option<::wsk::SocketAddr>,
        ) -> ::wsk::Result<()> {
            ::wsk::__private::start::<
                ::wsk::__private::kind::Listen,
                Self,
            >(self, __wsk_rt, &__WSK_CONFIG, __wsk_addr)
        }
    }
};
