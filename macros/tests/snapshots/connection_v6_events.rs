// Input:
// #[wsk_endpoint(
//     kind = "connection",
//     remote = "[2001:db8::1]:443",
//     addr = "[::]:5000",
//     events(receive, disconnect)
// )]
// pub struct Client6;
//
// Output (WSK_BLESS=1 cargo test -p wsk-macros to update):

pub struct Client6;
const _: () = {
    static __WSK_CONFIG: ::wsk::__private::Config = ::wsk::__private::Config {
        name: "Client6",
        addr: ::wsk::__private::SocketAddr::from_sockaddr_in6_bytes([
            23u8, 0u8, 19u8, 136u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8,
            0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8,
        ]),
        remote: ::core::option::Option::Some(
            ::wsk::__private::Remote::Addr(
                ::wsk::__private::SocketAddr::from_sockaddr_in6_bytes([
                    23u8, 0u8, 1u8, 187u8, 0u8, 0u8, 0u8, 0u8, 32u8, 1u8, 13u8, 184u8,
                    0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 1u8, 0u8, 0u8,
                    0u8, 0u8,
                ]),
            ),
        ),
        max_connections: 0u32,
        exclusive: false,
        v6only: ::core::option::Option::None,
        events: ::wsk::__private::Events {
            accept: false,
            receive: true,
            disconnect: true,
        },
    };
    #[automatically_derived]
    impl ::wsk::Endpoint for Client6 {
        fn config(&self) -> &'static ::wsk::__private::Config {
            &__WSK_CONFIG
        }
        fn start_with(
            &'static self,
            __wsk_rt: &'static ::wsk::Runtime,
            __wsk_addr: ::core::option::Option<::wsk::SocketAddr>,
        ) -> ::wsk::Result<()> {
            ::wsk::__private::start::<
                ::wsk::__private::kind::Connection,
                Self,
            >(self, __wsk_rt, &__WSK_CONFIG, __wsk_addr)
        }
    }
};
